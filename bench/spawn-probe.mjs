/**
 * Preloaded (`node --import`) by `npm run bench:pg`'s latency case into the real `agentq run`
 * it measures: writes the moment of each `spawned` event the dispatcher emits (its
 * `task.progress` event `{ type: 'spawned', pid }`, emitted once the spawner reported the
 * agent's pid) to fd 3 as `TASK_ID EPOCH_MS` lines. Nothing in agentq is changed: the first
 * `DispatcherEvents` that emits anything gets one more listener, then `emit` is the original
 * again. Plain JavaScript so the preload loads nothing else (no tsx) into the process.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';

const OUT_FD = 3;
const emit = EventEmitter.prototype.emit;
EventEmitter.prototype.emit = function (name, ...args) {
  if (this.constructor?.name === 'DispatcherEvents') {
    EventEmitter.prototype.emit = emit;
    this.on('task.progress', (claim, event) => {
      if (event.type === 'spawned') fs.writeSync(OUT_FD, `${claim.task.id} ${performance.timeOrigin + performance.now()}\n`);
    });
  }
  return emit.call(this, name, ...args);
};
