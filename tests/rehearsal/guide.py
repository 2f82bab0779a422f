"""`kubeadm-recover guide` at a pseudo-terminal, answered as a person would: the reason when it
asks why, then "do it" (Enter on the first choice) for every step it proposes. Prints what the
terminal showed; exits with the guide's exit code (1 if it stalls for 5 minutes).

    python3 guide.py REASON docker exec -it NODE kubeadm-recover guide
"""
import os
import pty
import re
import select
import sys
import time

STALL = 300


def main():
    reason, argv = sys.argv[1], sys.argv[2:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    seen = ""
    answered_reason = False
    answered_steps = set()
    last = time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096).decode("utf-8", "replace")
            except OSError:
                break
            if not chunk:
                break
            sys.stdout.write(chunk)
            sys.stdout.flush()
            seen += chunk
            last = time.monotonic()
        elif time.monotonic() - last > STALL:
            print(f"\nguide.py: nothing new for {STALL} s", file=sys.stderr)
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            sys.exit(1)
        if not answered_reason and "Why are you doing this?" in seen:
            time.sleep(0.2)
            os.write(fd, (reason + "\r").encode())
            answered_reason = True
        # A step's question: "== step N/M", then the choices ending with "quit".
        for match in re.finditer(r"== step (\d+)/\d+", seen):
            step = match.group(1)
            if step not in answered_steps and "quit" in seen[match.end():]:
                time.sleep(0.2)
                os.write(fd, b"\r")
                answered_steps.add(step)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(f"\nguide.py: answered {len(answered_steps)} step(s); exit {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
