import cloudpickle
import pytest

import faulty_templates
from targets import get_device

# Worker processes cannot import the tests folder: ship the test templates by value.
cloudpickle.register_pickle_by_value(faulty_templates)


@pytest.fixture(scope="session")
def host():
    return get_device("host")
