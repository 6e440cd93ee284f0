/*
 * agentq's Linux inotify binding (Node-API, so one build serves every Node version).
 *
 * fs.watch folds inotify's masks into "rename" / "change"; agentq needs the masks themselves:
 * IN_CLOSE_WRITE (the writer closed the file) and IN_MOVED_TO (renamed in) say a task file is
 * complete. The inotify descriptor is polled on Node's own event loop (uv_poll), unref'd, and
 * every batch read is handed to JavaScript in one call.
 *
 *   open(onEvents)               → handle; onEvents([[wd, mask, cookie, name | null], …])
 *   addWatch(handle, path, mask) → watch descriptor (throws Error with code = errno name)
 *   close(handle)                → stops polling, closes the descriptor (idempotent)
 *   constants                    → { IN_CLOSE_WRITE, IN_MOVED_TO, … }
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

typedef struct {
  uv_poll_t poll;
  int fd;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int closed;
} Watcher;

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[4096 + 256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  const char *code = strerrorname_np(err);
  napi_throw_error(env, code ? code : "EINOTIFY", message);
  return NULL;
}

static void on_close(uv_handle_t *handle) {
  Watcher *w = handle->data;
  close(w->fd);
  free(w);
}

/* Stops the watcher; its memory is freed once libuv has closed the poll handle. */
static void stop(Watcher *w) {
  if (w->closed) return;
  w->closed = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->context);
  uv_close((uv_handle_t *)&w->poll, on_close);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  Watcher *w = handle->data;
  if (w->closed || status < 0) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value list;
  napi_create_array(env, &list);
  uint32_t n = 0;
  char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t len = read(w->fd, buf, sizeof buf);
    if (len <= 0) break; /* EAGAIN: drained */
    for (char *p = buf; p < buf + len;) {
      const struct inotify_event *e = (const struct inotify_event *)p;
      napi_value item, v;
      napi_create_array_with_length(env, 4, &item);
      napi_create_int32(env, e->wd, &v);
      napi_set_element(env, item, 0, v);
      napi_create_uint32(env, e->mask, &v);
      napi_set_element(env, item, 1, v);
      napi_create_uint32(env, e->cookie, &v);
      napi_set_element(env, item, 2, v);
      if (e->len > 0) napi_create_string_utf8(env, e->name, strnlen(e->name, e->len), &v);
      else napi_get_null(env, &v);
      napi_set_element(env, item, 3, v);
      napi_set_element(env, list, n++, item);
      p += sizeof(struct inotify_event) + e->len;
    }
  }
  if (n > 0) {
    napi_value cb, recv, result;
    napi_get_reference_value(env, w->callback, &cb);
    napi_get_global(env, &recv);
    if (napi_make_callback(env, w->context, recv, cb, 1, &list, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  stop((Watcher *)data);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype type = napi_undefined;
  if (argc > 0) napi_typeof(env, argv[0], &type);
  if (type != napi_function) {
    napi_throw_type_error(env, NULL, "open(onEvents): onEvents must be a function");
    return NULL;
  }
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return throw_errno(env, "inotify_init1", errno);
  Watcher *w = calloc(1, sizeof *w);
  if (!w) {
    close(fd);
    return throw_errno(env, "open", ENOMEM);
  }
  w->fd = fd;
  w->env = env;
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    close(fd);
    free(w);
    napi_throw_error(env, NULL, uv_strerror(rc));
    return NULL;
  }
  w->poll.data = w;
  napi_create_reference(env, argv[0], 1, &w->callback);
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "agentq:inotify", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &w->context);
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  uv_unref((uv_handle_t *)&w->poll); /* never keeps the process alive by itself */
  napi_value handle;
  napi_create_external(env, w, finalize, NULL, &handle);
  return handle;
}

static Watcher *watcher_of(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "not an inotify handle");
    return NULL;
  }
  return data;
}

static napi_value js_add_watch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "addWatch(handle, path, mask)");
    return NULL;
  }
  Watcher *w = watcher_of(env, argv[0]);
  if (!w) return NULL;
  if (w->closed) {
    napi_throw_error(env, "ERR_CLOSED", "addWatch: the inotify handle is closed");
    return NULL;
  }
  char path[4096];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], path, sizeof path, &len) != napi_ok || len >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "addWatch: path must be a string shorter than 4095 bytes");
    return NULL;
  }
  uint32_t mask = 0;
  if (napi_get_value_uint32(env, argv[2], &mask) != napi_ok) {
    napi_throw_type_error(env, NULL, "addWatch: mask must be a number");
    return NULL;
  }
  int wd = inotify_add_watch(w->fd, path, mask);
  if (wd < 0) return throw_errno(env, path, errno);
  napi_value result;
  napi_create_int32(env, wd, &result);
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return NULL;
  Watcher *w = watcher_of(env, argv[0]);
  if (w) stop(w);
  return NULL;
}

static void set_uint(napi_env env, napi_value obj, const char *key, uint32_t value) {
  napi_value v;
  napi_create_uint32(env, value, &v);
  napi_set_named_property(env, obj, key, v);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addWatch", NULL, js_add_watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
  napi_value c;
  napi_create_object(env, &c);
  set_uint(env, c, "IN_ACCESS", IN_ACCESS);
  set_uint(env, c, "IN_MODIFY", IN_MODIFY);
  set_uint(env, c, "IN_ATTRIB", IN_ATTRIB);
  set_uint(env, c, "IN_CLOSE_WRITE", IN_CLOSE_WRITE);
  set_uint(env, c, "IN_CLOSE_NOWRITE", IN_CLOSE_NOWRITE);
  set_uint(env, c, "IN_OPEN", IN_OPEN);
  set_uint(env, c, "IN_MOVED_FROM", IN_MOVED_FROM);
  set_uint(env, c, "IN_MOVED_TO", IN_MOVED_TO);
  set_uint(env, c, "IN_CREATE", IN_CREATE);
  set_uint(env, c, "IN_DELETE", IN_DELETE);
  set_uint(env, c, "IN_DELETE_SELF", IN_DELETE_SELF);
  set_uint(env, c, "IN_MOVE_SELF", IN_MOVE_SELF);
  set_uint(env, c, "IN_Q_OVERFLOW", IN_Q_OVERFLOW);
  set_uint(env, c, "IN_IGNORED", IN_IGNORED);
  set_uint(env, c, "IN_ONLYDIR", IN_ONLYDIR);
  set_uint(env, c, "IN_ISDIR", IN_ISDIR);
  napi_set_named_property(env, exports, "constants", c);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
