"""ONNX's backend node tests through the project's compile path, against plain TVM (scripts/onnx_node_tests.py)."""
import os
import sys

import numpy as np
import onnx
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import onnx_node_tests as node_tests  # noqa: E402

# One or two cases per operator family the lowering touches, and the known troublemakers.
REPRESENTATIVE = ("^test_(conv_with_strides_padding|convtranspose|convtranspose_pads|gemm_default_matrix_bias"
                  "|gemm_transposeB|matmul_3d|maxpool_2d_pads|averagepool_3d_default|averagepool_2d_ceil"
                  "|globalaveragepool|lppool_2d_default|batchnorm_example|instancenorm_example"
                  "|group_normalization_example|layer_normalization_4d_axis1|lrn|prelu_broadcast|gelu_tanh_2"
                  "|softmax_axis_1|logsoftmax_negative_axis|clip_default_min|reshape_negative_dim"
                  "|transpose_all_permutations_0|concat_3d_axis_negative_1|split_equal_parts_2d"
                  "|flatten_negative_axis1|squeeze_negative_axes|unsqueeze_negative_axes"
                  "|resize_upsample_scales_nearest|constant_pad|add_bcast|div_bcast|reduce_mean_keepdims_example)$")


def check(results: list[node_tests.Result]) -> None:
    summary = node_tests.summarize(results)
    failures = [f"{ours.case}[{ours.variant}]: {ours.outcome}: {ours.detail}" for _, ours in summary.project_only]
    assert not failures, "the project fails where plain TVM passes:\n" + "\n".join(failures)
    passes = {path: summary.counts[path].get(node_tests.PASS, 0) for path in node_tests.PATHS}
    assert passes["autotune"] >= passes["tvm"], passes


@pytest.fixture(scope="module")
def cases():
    return node_tests.select_cases()


def test_selection_covers_the_operators_and_says_what_it_skips(cases):
    selected, not_run = cases
    assert {case.op for case in selected} == node_tests.OPS  # every operator has cases
    assert not_run["test_batchnorm_example_training_mode"] == "training mode"
    assert all(case.inputs and case.outputs for case in selected)


def test_weights_become_initializers(cases):
    case = next(c for c in cases[0] if c.name == "test_gemm_default_matrix_bias")
    model, feeds = node_tests.with_constants(onnx.ModelProto.FromString(case.model), case.inputs)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["a"] and len(feeds) == 1
    assert [init.name for init in model.graph.initializer] == ["b", "c"]
    runs = node_tests.make_runs([case])
    assert {(r.variant, r.path) for r in runs} == {(v, p) for v in ("inputs", "constants") for p in node_tests.PATHS}


def test_compare_reports_shapes_and_mismatches(cases):
    case = next(c for c in cases[0] if c.name == "test_relu")
    expected = case.outputs[0]
    assert node_tests.compare(case, [expected.copy()])[0] == node_tests.PASS
    outcome, detail, bad, worst = node_tests.compare(case, [expected + np.where(expected > 1, 0.5, 0).astype("float32")])
    assert outcome == "wrong" and bad == int((expected > 1).sum()) and worst == pytest.approx(0.5)
    assert "shape" in node_tests.compare(case, [expected[:1]])[1]


def test_a_run_past_its_timeout_is_killed_and_the_next_one_runs(cases):
    case = next(c for c in cases[0] if c.name == "test_relu")
    specs = [node_tests.RunSpec(case, "inputs", "tvm")]
    assert [r.outcome for r in node_tests.run_all(specs, workers=1, timeout=0.01)] == ["timeout"]
    assert [r.outcome for r in node_tests.run_all(specs, workers=1)] == [node_tests.PASS]


def test_representative_cases_pass_wherever_plain_tvm_does():
    selected, _ = node_tests.select_cases(REPRESENTATIVE)
    assert len(selected) >= 30
    check(list(node_tests.run_all(node_tests.make_runs(selected), workers=2)))


@pytest.mark.slow
def test_every_selected_case_passes_wherever_plain_tvm_does(cases):
    check(list(node_tests.run_all(node_tests.make_runs(cases[0]), workers=2)))
