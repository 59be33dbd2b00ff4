"""cupy.cuda.runtime of the stand-in: device count and properties, CUDA errors."""
from .. import _standin

is_hip = False

_NAMES = {0: "cudaSuccess", 46: "cudaErrorDevicesUnavailable", 100: "cudaErrorNoDevice",
          101: "cudaErrorInvalidDevice", 400: "cudaErrorInvalidResourceHandle",
          600: "cudaErrorNotReady", 700: "cudaErrorIllegalAddress"}
_TEXT = {46: "CUDA-capable device(s) is/are busy or unavailable",
         100: "no CUDA-capable device is detected",
         101: "invalid device ordinal", 400: "invalid resource handle",
         600: "device not ready",
         700: "an illegal memory access was encountered"}


class CUDARuntimeError(RuntimeError):
    def __init__(self, status):
        self.status = status
        super().__init__(f"{_NAMES.get(status, status)}: {_TEXT.get(status, 'error')}")

    def __reduce__(self):
        return (type(self), (self.status,))


CUDARuntimeError.__module__ = "cupy_backends.cuda.api.runtime"


def getDeviceCount():
    n = _standin.visible_devices()
    if n == 0:
        raise CUDARuntimeError(100)
    return n


def getDevice():
    return _standin.current_device()


def setDevice(i):
    _standin.set_current_device(int(i))


def deviceSynchronize():
    from . import Device
    Device().synchronize()


def runtimeGetVersion():
    return 13000


def driverGetVersion():
    return 13000


def getDeviceProperties(i):
    _standin.check_device_index(i)
    return {"name": f"CuPy stand-in device {i} (NumPy and the minivgg emulator)".encode(),
            "totalGlobalMem": 80 * 2 ** 30, "multiProcessorCount": 132, "major": 9,
            "minor": 0, "warpSize": 32, "maxThreadsPerBlock": 1024}


def memGetInfo():
    st = _standin.device_state()
    total = 80 * 2 ** 30
    return total - st.used, total
