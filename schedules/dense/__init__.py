"""Matmul, dense and batch_matmul: the computation every device family shares (`compute.py`) and its schedule
per family (`cpu.py`)."""
from schedules.dense.compute import BatchMatmulCompute, DenseCompute, MatmulCompute
from schedules.dense.cpu import BatchMatmulCPU, DenseCPU, MatmulCPU

__all__ = ["BatchMatmulCPU", "BatchMatmulCompute", "DenseCPU", "DenseCompute", "MatmulCPU", "MatmulCompute"]
