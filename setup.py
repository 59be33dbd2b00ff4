"""Install minivgg: ``pip install -e .`` (extras: test, io, onnx, plot, gpu, dist)."""
from setuptools import find_packages, setup

setup(
    name="minivgg",
    version="0.1.0",
    description="The VGG paper (Simonyan & Zisserman, ICLR 2015) from scratch in NumPy/CuPy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minivgg", "minivgg.*"]) + ["minivgg.kernels"],
    # The CUDA sources live in kernels/ at the top of the repository and are
    # installed inside the package as minivgg/kernels/*.cu.
    package_dir={"minivgg": "minivgg", "minivgg.kernels": "kernels"},
    package_data={"minivgg.kernels": ["*.cu", "*.cuh", "*.h"],
                  "minivgg.data": ["imagenet_classes.txt"]},
    install_requires=["numpy>=1.24", "pillow>=9", "tqdm>=4.60", "threadpoolctl>=3"],
    extras_require={
        # Everything the test suite exercises without a GPU: PyTorch (the
        # oracle, and .pth files), safetensors and ONNX (interoperability),
        # NVRTC and CuPy (compiling the CUDA kernels), MPI (two ranks on the
        # CPU). CI pins torch to the build it tests with.
        "test": ["pytest>=7", "torch>=2.1", "matplotlib>=3.5", "safetensors>=0.4",
                 "onnx>=1.14", "onnxruntime>=1.16",
                 "cupy-cuda13x>=13; platform_system == 'Linux'",
                 "cuda-toolkit[nvrtc]>=13; platform_system == 'Linux'",
                 "mpi4py>=3.1", "mpich; platform_system != 'Windows'"],
        # Writing .safetensors (reading needs nothing); .pth files need torch.
        "io": ["safetensors>=0.4"],
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],
        "plot": ["matplotlib>=3.5"],
        # The CuPy wheel for CUDA 13 drivers; for CUDA 12 install cupy-cuda12x
        # instead (pip install cupy-cuda12x), see docs/gpu.md.
        "gpu": ["cupy-cuda13x>=13"],
        # mpiexec from the mpich wheel: no system MPI needed.
        "dist": ["mpi4py>=3.1", "mpich; platform_system != 'Windows'"],
    },
    entry_points={"console_scripts": [
        "minivgg-train = minivgg.cli.train:console",
        "minivgg-evaluate = minivgg.cli.evaluate:console",
        "minivgg-classify = minivgg.cli.classify:console",
        "minivgg-summary = minivgg.summary:main",
        "minivgg-export = minivgg.cli.export:console",
    ]},
)
