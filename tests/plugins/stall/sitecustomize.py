"""Test-only: hold a process at one file-system call, so a test can SIGKILL it exactly there (a chunk or checkpoint
written to its temporary name and not yet renamed into place, a claim about to be released). Loaded only when a test
puts this folder on PYTHONPATH; production code has no hook for it.

    WORLDSIM_TEST_STALL=REGEX          hold the first matching call (its path argument searched with REGEX)
    WORLDSIM_TEST_STALL_EVENT=NAME     the audit event to watch (default `os.rename`, raised by os.rename and
                                       os.replace with (src, dst) before renaming; `shutil.rmtree` for removals,
                                       `os.mkdir` for claims)
    WORLDSIM_TEST_STALL_SKIP=N         let the first N matching calls through
    WORLDSIM_TEST_STALL_MARK=PATH      created when the hold begins: the test waits for it, then acts
    WORLDSIM_TEST_STALL_RELEASE=PATH   go on once PATH exists (default: hold 120 s, i.e. until killed)

Implemented with an audit hook (PEP 578), so the call being held is the real one, with its real arguments."""

import os
import re
import sys
import time

_pattern = os.environ.get("WORLDSIM_TEST_STALL")
if _pattern:
    _regex = re.compile(_pattern)
    _event = os.environ.get("WORLDSIM_TEST_STALL_EVENT", "os.rename")
    _release = os.environ.get("WORLDSIM_TEST_STALL_RELEASE")
    _mark = os.environ.get("WORLDSIM_TEST_STALL_MARK")
    _skip = [int(os.environ.get("WORLDSIM_TEST_STALL_SKIP", "0"))]

    def _hook(event, args):
        if event != _event or not args or not _regex.search(os.fsdecode(args[0])):
            return
        if _skip[0] > 0:
            _skip[0] -= 1
            return
        if _mark:
            with open(_mark, "w") as f:
                f.write(os.fsdecode(args[0]))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (_release and os.path.exists(_release)):
            time.sleep(0.01)

    sys.addaudithook(_hook)
