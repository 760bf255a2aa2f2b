"""A forked worker that receives SIGTERM at once dies, even while `batseg` turns SIGTERM into an
exception in its parent: the race that hung `batseg train` in nnU-Net's short-lived fork pools
(a SIGTERM reaching the worker before the at-fork hook ran was dropped)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap


def test_short_lived_fork_pools_under_the_sigterm_handler_never_hang() -> None:
    script = textwrap.dedent("""
        import multiprocessing
        from batseg.cli import sigterm_as_interrupt

        def work(x, y):
            return x + y

        with sigterm_as_interrupt():
            for _ in range(150):
                with multiprocessing.get_context("fork").Pool(8) as pool:
                    pool.starmap(work, [(1, 2)] * 4)
        print("done")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-500:]


def test_the_parent_keeps_sigterm_unblocked_after_a_fork() -> None:
    import signal

    from batseg.cli import sigterm_as_interrupt

    with sigterm_as_interrupt():
        process = multiprocessing.get_context("fork").Process(target=int)
        process.start()
        process.join(10)
        assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert process.exitcode == 0
