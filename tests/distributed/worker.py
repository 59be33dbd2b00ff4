"""examples/train_vgg.py under mpiexec, with a fault planted for the failure
tests (a rank that raises, or that is killed, at a given step):

    mpiexec -n 2 python tests/distributed/worker.py --fail-rank 1 --fail-step 3 \\
        --fail-how kill -- <train_vgg.py arguments>
"""
import argparse
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))

import train_vgg  # noqa: E402

from minivgg.distributed import env_rank  # noqa: E402
from minivgg.train import Trainer  # noqa: E402


def main():
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser()
    p.add_argument("--fail-rank", type=int, default=-1)
    p.add_argument("--fail-step", type=int, default=0)
    p.add_argument("--fail-how", choices=["raise", "kill"], default="raise")
    a = p.parse_args(argv[:split])
    if env_rank() == a.fail_rank:
        real = Trainer.train_step

        def faulty(self, x, y):
            if self.global_step + 1 == a.fail_step:
                if a.fail_how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError(f"planted failure at step {a.fail_step}")
            return real(self, x, y)
        Trainer.train_step = faulty
    return train_vgg.main(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main())
