// A shared library that is not a syncpod plugin: it exports a function, but not the entry point.

extern "C" __attribute__((visibility("default"))) int syncpod_fake_not_a_plugin() {
  return 42;
}
