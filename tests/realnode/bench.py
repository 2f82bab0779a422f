#!/usr/bin/env python3
"""The restart benchmark on the real node (tests/realnode/node.sh up first; root).

From the write of the manifest to the proof of a healthy new apiserver, three ways:
  limit    the kubelet alone: when the new apiserver first answers /readyz ok (an independent
           poller, every 20 ms, from the write on): the physical limit
  tool     kubeadm-recover extend-tokens disable/enable: its own waitedMs (write to proof), and
           its added latency after readiness (when it saw ok minus when the poller first did)
  runbook  the troubleshooting notes' way, scripted: edit the file, then poll /livez each second
  skip     the tool with --skip-shutdown-grace: the old apiserver's container stopped once it
           stopped listening, not left to its 30 s grace period (the limit is then the kubelet's
           with that stop)

usage: tests/realnode/bench.py [ROUNDS] [WAY...]   (default 1 round of every way: tool, runbook,
       skip; each runs the change and back)
Prints one JSON object per measurement and a summary. A benchmark, not a test: nothing asserts.
"""
import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "target/debug/kubeadm-recover")
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
HOST, PORT = "198.51.100.10", 6443


def tls_context():
    text = open("/etc/kubernetes/admin.conf").read()
    field = lambda name: base64.b64decode(re.search(name + r": (\S+)", text).group(1))
    directory = tempfile.mkdtemp()
    paths = {}
    for name in ("client-certificate-data", "client-key-data"):
        paths[name] = os.path.join(directory, name)
        with open(paths[name], "wb") as f:
            f.write(field(name))
    context = ssl.create_default_context(cafile="/etc/kubernetes/pki/ca.crt")
    context.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
    return context


def ok(context, path, timeout=0.5):
    try:
        connection = http.client.HTTPSConnection(HOST, PORT, context=context, timeout=timeout)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status == 200 and body.strip() == b"ok"
    except (OSError, http.client.HTTPException):
        return False


class Poller(threading.Thread):
    """The first /readyz ok after the apiserver went away: the new one ready."""

    def __init__(self, context):
        super().__init__(daemon=True)
        self.context, self.went_away, self.ready_ms, self.stop = context, False, None, False

    def run(self):
        # Gone = no ok for a whole second (the outage lasts seconds; one refused poll is not it).
        failing_since = None
        while not self.stop and self.ready_ms is None:
            up = ok(self.context, "/readyz", timeout=0.2)
            now = time.time()
            if not up:
                failing_since = failing_since or now
                self.went_away |= now - failing_since >= 1
            elif self.went_away:
                self.ready_ms = now * 1000
            else:
                failing_since = None
            time.sleep(0.02)


def tool_run(context, action, extra=()):
    poller = Poller(context)
    poller.start()
    command = {"disable": ["extend-tokens", "disable", "--accept-stale-tokens"],
               "revert": ["revert", "--accept-stale-tokens"]}[action]
    out = subprocess.run([TOOL, *command, *extra, "--yes", "-o", "json"], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    if extra and not doc["proof"].get("shutdownGraceSkipped"):
        print("--skip-shutdown-grace did not apply:\n" + out.stderr, file=sys.stderr)
    poller.join(timeout=5)
    proof = doc["proof"]
    write_ms = proof["noticedUnixMs"] - proof["waitedMs"]
    limit = poller.ready_ms - write_ms if poller.ready_ms else None
    return {"way": "skip" if extra else "tool", "action": action, "wholeMs": proof["waitedMs"], "limitMs": limit,
            "addedAfterReadyMs": proof["noticedUnixMs"] - poller.ready_ms if poller.ready_ms else None,
            "ratio": round(proof["waitedMs"] / limit, 4) if limit else None, "nudged": proof["nudged"]}


def runbook_run(context, action):
    """Edit (atomic rename, as an editor that writes a new file does), then /livez each second."""
    text = open(MANIFEST).read()
    flag = "    - --service-account-extend-token-expiration=false\n"
    edited = text.replace(flag, "") if action == "revert" else text.replace(
        "    - --secure-port=6443\n", "    - --secure-port=6443\n" + flag)
    poller = Poller(context)
    poller.start()
    tmp = "/etc/kubernetes/tmp/bench-runbook.yaml"
    os.makedirs("/etc/kubernetes/tmp", exist_ok=True)
    with open(tmp, "w") as f:
        f.write(edited)
    write_ms = time.time() * 1000
    os.rename(tmp, MANIFEST)
    time.sleep(1)
    went_away = False
    while True:
        up = ok(context, "/livez")
        went_away |= not up
        if up and went_away:
            break
        time.sleep(1)
    done_ms = time.time() * 1000
    poller.join(timeout=5)
    limit = poller.ready_ms - write_ms if poller.ready_ms else None
    return {"way": "runbook", "action": action, "wholeMs": round(done_ms - write_ms), "limitMs": limit and round(limit),
            "addedAfterReadyMs": round(done_ms - poller.ready_ms) if poller.ready_ms else None,
            "ratio": round((done_ms - write_ms) / limit, 4) if limit else None}


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    context = tls_context()
    results = []
    ways = sys.argv[2:] or ["tool", "runbook", "skip"]
    run = {"tool": lambda action: tool_run(context, action),
           "runbook": lambda action: runbook_run(context, action),
           "skip": lambda action: tool_run(context, action, ["--skip-shutdown-grace"])}
    for _ in range(rounds):
        # The same change each way, from kubeadm's manifest, and back.
        for way in ways:
            for action in ("disable", "revert"):
                result = run[way](action)
                print(json.dumps(result), flush=True)
                results.append(result)
    for way in ("tool", "skip", "runbook"):
        runs = [r for r in results if r["way"] == way and r["ratio"]]
        if runs:
            print(json.dumps({"summary": way, "runs": len(runs),
                              "wholeMs": sorted(r["wholeMs"] for r in runs),
                              "worstAddedAfterReadyMs": max(r["addedAfterReadyMs"] for r in runs),
                              "worstRatio": max(r["ratio"] for r in runs)}))


if __name__ == "__main__":
    main()
