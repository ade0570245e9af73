"""SigtermFlag: records SIGTERM inside its block and gives the previous handler back after it."""

import os
import signal

from irgeodiff_jax.training import preemption


def test_sigterm_is_recorded_inside_the_block_and_the_old_handler_restored():
    seen = []
    old = signal.signal(signal.SIGTERM, lambda *_: seen.append("old"))
    try:
        with preemption.SigtermFlag() as flag:
            assert not flag.agreed(1, every=10)
            os.kill(os.getpid(), signal.SIGTERM)
            assert flag.raised and flag.agreed(2, every=10)  # one process: no agreement round
        assert seen == []
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == ["old"]
    finally:
        signal.signal(signal.SIGTERM, old)
