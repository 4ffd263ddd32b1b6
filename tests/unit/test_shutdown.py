"""The shutdown deadline: a stop that hangs still ends the process, with exit code 0."""

import threading

from heartbeat.shutdown import ShutdownDeadline


def test_an_armed_deadline_exits_with_code_zero_once_its_time_is_up():
    exited = threading.Event()
    codes = []
    deadline = ShutdownDeadline(0.05, exit=lambda code: (codes.append(code), exited.set()))
    deadline.arm()
    assert exited.wait(5)
    assert codes == [0]


def test_arming_twice_keeps_one_deadline():
    codes = []
    done = threading.Event()
    deadline = ShutdownDeadline(0.05, exit=lambda code: (codes.append(code), done.set()))
    deadline.arm()
    deadline.arm()
    assert done.wait(5)
    threading.Event().wait(0.2)
    assert codes == [0]


def test_a_disarmed_deadline_never_exits():
    codes = []
    deadline = ShutdownDeadline(0.05, exit=codes.append)
    deadline.arm()
    deadline.disarm()
    threading.Event().wait(0.3)
    assert codes == []
