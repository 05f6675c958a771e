"""Test-wide settings: one torch thread. The tests run tiny models, where extra threads buy
nothing and oversubscribed cores (parallel jobs, busy CI machines) slow them down badly."""
import torch

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture
def cli(capsys):
    """Run the ``dnas`` command line in this process: ``code, out, err = cli("search", ...)``.

    In-process is much cheaper than a subprocess (no second torch import) and still goes
    through the real entry point, so exit codes and the one-line error handling are the CLI's."""
    from dnas.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def assert_one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit code 2, exactly one non-empty stderr line, starting with ``error:``, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
