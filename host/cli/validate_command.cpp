// hpt validate MANIFEST.toml [key.path=value ...]
#include "cli/commands.hpp"
#include "config/manifest.hpp"

namespace hpt::host {

namespace {
const char* kValidateHelp =
    "usage: hpt validate MANIFEST.toml [key.path=value ...]\n"
    "\n"
    "Parses the manifest, applies the overrides, loads the plugins it names and checks every\n"
    "key against their declared options. Prints the resolved manifest; exit 2 on any problem.\n";
}  // namespace

void add_validate_command(CommandLine& cl) {
  auto r = std::make_shared<RunRequest>();
  CLI::App* c = add_command(cl, "validate", "check a manifest without running", kValidateHelp,
                            [&cl, r](const CLI::App& parsed) {
                              RunRequest a = manifest_arguments(parsed, *r, kValidateHelp);
                              Manifest m = Manifest::load(a.manifest, a.overrides);
                              PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
                              ResolvedManifest resolved = resolve(m, loader);
                              cl.out << resolved.to_toml();
                              cl.out << "\n# " << a.manifest << " is valid\n";
                              return kExitOk;
                            });
  c->add_option("manifest", r->manifest, "the run manifest");
  c->add_option("overrides", r->overrides, "key.path=value");
}

}  // namespace hpt::host
