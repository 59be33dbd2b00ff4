"""Shape rules shared by the ops of §2.1: output sizes of sliding windows,
and the checks that name a bad operand with what was expected.

    N   batch size              C   input channels       K   output channels
    H   input height            W   input width
    KH  kernel height           KW  kernel width
    OH  output height           OW  output width          F   features
"""


def pair(v, name="value"):
    """An int or a pair as (h, w): 3 -> (3, 3), (3, 2) -> (3, 2)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_output_size(size, kernel, stride, padding):
    """Output length along one axis: floor((size + 2P - K) / S) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def window_output_size(x_shape, kernel, stride, padding, where, what):
    """(OH, OW) of a sliding window over x (N, C, H, W); ValueError if empty."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh = conv_output_size(x_shape[2], kh, sh, ph)
    ow = conv_output_size(x_shape[3], kw, sw, pw)
    if oh < 1 or ow < 1:
        raise ValueError(f"{where}: input of spatial size {x_shape[2]}x{x_shape[3]} is smaller "
                         f"than the {kh}x{kw} {what} (padding {tuple(padding)}); expected at "
                         f"least {kh - 2 * ph}x{kw - 2 * pw}")
    return oh, ow


def check_conv_shapes(x_shape, w_shape, stride, padding, where="conv2d"):
    """Validate conv2d operand shapes; return (OH, OW).

    Raises ValueError naming ``where`` with the expected and actual shapes.
    """
    if len(x_shape) != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got {tuple(x_shape)}")
    if len(w_shape) != 4:
        raise ValueError(f"{where}: expected weight of shape (K, C, KH, KW), got {tuple(w_shape)}")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"{where}: expected input of shape (N, {w_shape[1]}, H, W), "
                         f"got {tuple(x_shape)} ({x_shape[1]} channels)")
    (sh, sw), (ph, pw) = stride, padding
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(f"{where}: stride must be >= 1 and padding >= 0, got stride "
                         f"{stride} and padding {padding}")
    return window_output_size(x_shape, w_shape[2:], stride, padding, where, "kernel")


def check_pool_shapes(x_shape, kernel, stride, padding, where="max_pool2d"):
    """Validate a pooling input; return (OH, OW)."""
    if len(x_shape) != 4:
        raise ValueError(f"{where}: expected input of shape (N, C, H, W), got {tuple(x_shape)}")
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if kh < 1 or kw < 1 or sh < 1 or sw < 1:
        raise ValueError(f"{where}: kernel and stride must be >= 1, got kernel {kernel}, "
                         f"stride {stride}")
    if ph > kh // 2 or pw > kw // 2 or ph < 0 or pw < 0:
        raise ValueError(f"{where}: padding must be between 0 and half the kernel, got {padding} "
                         f"for kernel {kernel}")
    return window_output_size(x_shape, kernel, stride, padding, where, "pooling window")


def check_linear_shapes(x_shape, w_shape, where="linear"):
    """Validate linear operand shapes: x (N, F_in), w (F_out, F_in)."""
    if len(w_shape) != 2:
        raise ValueError(f"{where}: expected weight of shape (F_out, F_in), got {tuple(w_shape)}")
    if len(x_shape) != 2 or x_shape[1] != w_shape[1]:
        raise ValueError(f"{where}: expected input of shape (N, {w_shape[1]}), "
                         f"got {tuple(x_shape)}")
