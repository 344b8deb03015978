// A shared library named like a plugin that never used HPT_PLUGIN: no entry point.
extern "C" int hpt_not_a_plugin() { return 42; }
