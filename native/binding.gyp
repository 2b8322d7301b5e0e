{
  "targets": [
    {
      "target_name": "isolfs_native",
      "sources": ["src/addon.c", "src/deadman.c", "src/pollwatch.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-D_FILE_OFFSET_BITS=64", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "defines": ["FUSE_USE_VERSION=35", "NAPI_VERSION=8"]
    },
    {
      "target_name": "isolfs-attach",
      "type": "executable",
      "sources": ["src/attach.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "isolfs-oci-hook",
      "type": "executable",
      "sources": ["src/hook.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
