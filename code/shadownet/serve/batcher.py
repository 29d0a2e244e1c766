"""Dynamic batching: images of concurrent requests go through the model together.

Each prepared image waits in a queue. One task takes the first waiting image, then every image
already waiting, up to ``max_batch``, and runs them as one batch in the model's thread while the next
batch gathers. Under load the queue fills while the model runs, so batches grow by themselves. While
other requests' images are still being decoded (``incoming``) it waits for them too, at most
``max_wait`` seconds; a request alone is never held back. ``max_batch=1`` turns batching off.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Result:
    text: bytes
    confidence: float
    queue_s: float  # waiting for a batch
    model_s: float  # the batch's model call
    batch: int = field(default=0)  # its batch's id: a request's batches are counted once


class Batcher:
    def __init__(self, recognize: Callable[[list[np.ndarray]], tuple[list[bytes], list[float]]],
                 max_batch: int = 64, max_wait: float = 0.002, on_batch: Callable[[int, float], None] = None):
        self._recognize = recognize
        self.max_batch, self.max_wait = max(1, max_batch), max(0.0, max_wait)
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._task: asyncio.Task | None = None
        self._batches = 0
        self.incoming = 0  # images being decoded that will join the queue (the server counts them)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def recognize(self, pixels: np.ndarray) -> Result:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((pixels, time.perf_counter(), future))
        return await future

    async def _gather(self) -> list:
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self.incoming <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            batch = [item for item in batch if not item[2].done()]  # a timed-out request's images are dropped
            if not batch:
                continue
            start = time.perf_counter()
            try:
                texts, confidences = await loop.run_in_executor(self._executor, self._recognize,
                                                                [pixels for pixels, _, _ in batch])
            except Exception as exc:  # the model failed: every request of the batch gets the error
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            seconds = time.perf_counter() - start
            self._batches += 1
            self._on_batch(len(batch), seconds)
            # one text per image of the batch: _recognize runs the model on exactly these
            for (_, queued, future), text, confidence in zip(batch, texts, confidences, strict=False):
                if not future.done():
                    future.set_result(Result(text, confidence, start - queued, seconds, self._batches))
