'use strict';
// The compiled binding (see inotify.c): open(onEvents) → handle, addWatch(handle, path, mask) → wd, close(handle).
module.exports = require('./build/Release/agentq_inotify.node');
