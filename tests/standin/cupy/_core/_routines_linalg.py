"""The cuBLAS compute type of float32 products (TF32 or full float32), as
CuPy keeps it: one setting for the process."""
import numpy as np

COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC = 0, 1, 2
COMPUTE_TYPE_FP16, COMPUTE_TYPE_FP32, COMPUTE_TYPE_FP64 = 3, 4, 5
COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32 = 6, 7

compute_types = {}


def set_compute_type(dtype, compute_type):
    compute_types[np.dtype(dtype)] = compute_type


def get_compute_type(dtype):
    return compute_types.get(np.dtype(dtype), COMPUTE_TYPE_DEFAULT)
