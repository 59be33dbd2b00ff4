"""Data parallelism on the textbook tier: its plain gradient rule leaves
each gradient outside the optimizer's buffer, and the bucketed exchange
must first bring it in (GradientSync's hooks, FlatParameters.adopt). Two
ranks with --ops reference, overlapping the exchange with backward, give
the weights of one fast-tier process."""
from test_data_parallel import assert_close, run, tiny, weights


def test_two_reference_ranks_equal_one_fast_process(tmp_path):
    one = run(tiny(tmp_path / "one", "--max-steps", "3"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run(tiny(tmp_path / "two", "--max-steps", "3", "--distributed", "mpi", "--ops",
                   "reference", "--bucket-mb", "0.001"), ranks=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"))
