"""The fast tier: the same ops as ``minivgg/functional`` (the textbook
tier), computed faster on the CPU, each module tested equal to its textbook
twin. ``select.py`` is the one door that decides which runs.

    select.py          which implementation runs (the tier, the conv algorithm), and why
    conv.py            im2col + GEMM in cache-sized blocks, bias and ReLU fused; GPU chunks
    channels_last.py   im2col with the channels innermost (the layers after the first)
    small_maps.py      one GEMM over a whole 2x2 or 1x1 map
    winograd.py        Winograd F(2x2, 3x3)
    winograd4.py       Winograd F(4x4, 3x3)
    pooling.py         max-pooling without a stored argmax, in chunks, on threads
    activation.py      ReLU without a second pass, dropout
    linear.py          FC layers with dW handed to the optimizer's buffer
    handoff.py         leaves' gradients written into the optimizer's flat buffer
    transforms.py      the data pipeline's tail as one pass per channel
"""
