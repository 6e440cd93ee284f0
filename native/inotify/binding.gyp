{
  "targets": [
    {
      "target_name": "agentq_inotify",
      "sources": ["inotify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
