"""A packet-level network impairer for the fault suite, where the kernel has
no netem: it owns a TUN device in the router namespace, every routed IPv4
packet is steered into it (policy routing, see netns.py), and it writes each
one back after a delay, or drops it, or writes it twice, or holds it back so
that later packets overtake it. The kernel then routes the packets it wrote
on to their destination. It works on whole IP packets, so the TCP stacks at
both ends see real loss, reordering and duplicates and recover by
themselves, as they would on a bad link (a TCP proxy would hide all that).

    impair.py DEV [--delay MS] [--jitter MS] [--loss P] [--dup P]
              [--reorder P] [--reorder-by MS] [--seed N]

Prints "ready" once attached to DEV; on SIGTERM prints one JSON line of
counters and exits 0. Random choices come from --seed: a run can be
repeated."""

import argparse
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def attach(dev):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Impairer:
    def __init__(self, fd, args):
        self.fd = fd
        self.a = args
        self.rng = random.Random(args.seed)
        self.held = []          # heap of (due, tiebreak, arrival index, packet)
        self.tiebreak = 0
        self.arrivals = 0
        self.last_out = -1      # arrival index of the last packet written
        self.stats = {"packets": 0, "bytes": 0, "dropped": 0, "duplicated": 0,
                      "held_back": 0, "out_of_order": 0, "written": 0, "write_errors": 0}

    def delay(self):
        d = self.a.delay + (self.rng.uniform(-self.a.jitter, self.a.jitter)
                            if self.a.jitter else 0.0)
        if self.a.reorder and self.rng.random() < self.a.reorder:
            self.stats["held_back"] += 1
            d += self.a.reorder_by
        return max(d, 0.0) / 1000.0

    def take(self, pkt, now):
        index = self.arrivals
        self.arrivals += 1
        self.stats["packets"] += 1
        self.stats["bytes"] += len(pkt)
        if self.a.loss and self.rng.random() < self.a.loss:
            self.stats["dropped"] += 1
            return
        copies = 1
        if self.a.dup and self.rng.random() < self.a.dup:
            copies = 2
            self.stats["duplicated"] += 1
        for _ in range(copies):
            self.tiebreak += 1
            heapq.heappush(self.held, (now + self.delay(), self.tiebreak, index, pkt))

    def emit_due(self, now):
        while self.held and self.held[0][0] <= now:
            _, _, index, pkt = heapq.heappop(self.held)
            if index < self.last_out:
                self.stats["out_of_order"] += 1
            self.last_out = max(self.last_out, index)
            try:
                os.write(self.fd, pkt)
                self.stats["written"] += 1
            except OSError:
                self.stats["write_errors"] += 1

    def run(self, stopping):
        while not stopping():
            now = time.monotonic()
            wait = 0.2 if not self.held else max(0.0, self.held[0][0] - now)
            readable, _, _ = select.select([self.fd], [], [], min(wait, 0.2))
            now = time.monotonic()
            if readable:
                while True:
                    try:
                        pkt = os.read(self.fd, 65536)
                    except BlockingIOError:
                        break
                    self.take(pkt, now)
            self.emit_due(time.monotonic())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dev")
    p.add_argument("--delay", type=float, default=0.0, help="ms added to every packet")
    p.add_argument("--jitter", type=float, default=0.0, help="+- ms, uniform")
    p.add_argument("--loss", type=float, default=0.0, help="probability of a drop")
    p.add_argument("--dup", type=float, default=0.0, help="probability of a second copy")
    p.add_argument("--reorder", type=float, default=0.0,
                   help="probability that a packet is held back --reorder-by ms")
    p.add_argument("--reorder-by", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    imp = Impairer(attach(args.dev), args)
    print("ready", flush=True)
    imp.run(lambda: bool(stop))
    print(json.dumps(imp.stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
