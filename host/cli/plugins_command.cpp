// hpt plugins [--kind KIND] [--dir DIR ...] [--markdown]
#include <iomanip>
#include <sstream>

#include "cli/commands.hpp"
#include "config/manifest.hpp"

namespace hpt::host {

namespace {

const char* kPluginsHelp =
    "usage: hpt plugins [--kind KIND] [--dir DIR ...] [--markdown]\n"
    "\n"
    "Lists every plugin library in the search path with its kind, name, version and options.\n"
    "KIND is one of: task optimizer backend dynamics correction phase checkpointer.\n"
    "--markdown prints the option tables of docs/manifest.md.\n";

struct PluginsArgs {
  std::string kind_filter;
  std::vector<std::string> extra;
  bool markdown = false;
};

// An option's range as "in [0..1]", ">= 1e-08", "<= 10" (empty without one). Bounds are
// inclusive. A one-sided range is written as an inequality, not as "[0..]": floats are
// always finite (the host refuses inf and nan, config/manifest.cpp), which an open
// bracket would not say.
std::string range_text(const OptionSpec& o) {
  std::ostringstream r;
  if (o.min && o.max) r << "in [" << *o.min << ".." << *o.max << "]";
  else if (o.min) r << ">= " << *o.min;
  else if (o.max) r << "<= " << *o.max;
  return r.str();
}

// The plugin part of docs/manifest.md: a heading and a table of options per plugin.
void print_plugins_markdown(const std::vector<std::shared_ptr<const PluginInfo>>& all, const std::string& kind_filter,
                            std::ostream& out) {
  for (PluginKind k : all_plugin_kinds()) {
    if (!kind_filter.empty() && kind_filter != section_name(k)) continue;
    for (const auto& p : all) {
      if (p->kind != k) continue;
      out << "### " << section_name(k) << " `" << p->name << "`\n\n" << p->summary << " (version " << p->version
          << ")\n\n";
      if (p->options.empty()) {
        out << "No options.\n\n";
        continue;
      }
      out << "| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
      for (const auto& o : p->options) {
        std::ostringstream type;
        type << to_string(o.type);
        if (o.min || o.max) type << " " << range_text(o);
        for (std::size_t i = 0; i < o.choices.size(); ++i) type << (i ? ", " : ": ") << o.choices[i];
        std::string doc = o.doc;
        for (std::size_t at = doc.find('|'); at != std::string::npos; at = doc.find('|', at + 2)) doc.replace(at, 1, "\\|");
        out << "| `" << o.name << "` | " << type.str() << " | `" << to_toml(o.default_value) << "` | " << doc << " |\n";
      }
      out << "\n";
    }
  }
}

int list_plugins(const PluginsArgs& a, std::ostream& out, std::ostream& err) {
  const std::string& kind_filter = a.kind_filter;
  bool markdown = a.markdown;
  if (!kind_filter.empty()) {
    std::vector<std::string> kinds;
    for (PluginKind k : all_plugin_kinds()) kinds.push_back(section_name(k));
    if (std::find(kinds.begin(), kinds.end(), kind_filter) == kinds.end()) {
      std::string near = closest_name(kind_filter, kinds);
      std::string list;
      for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
      throw BadInput("unknown plugin kind '" + kind_filter + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                     " (kinds: " + list + ")");
    }
  }
  PluginLoader loader(PluginLoader::default_dirs(a.extra));
  std::vector<std::string> problems;
  auto all = loader.load_all(&problems);
  if (markdown) {
    print_plugins_markdown(all, kind_filter, out);
    for (const auto& p : problems) err << "warning: " << p << "\n";
    return kExitOk;
  }
  out << "plugin search path: ";
  for (std::size_t i = 0; i < loader.dirs().size(); ++i) out << (i ? ":" : "") << loader.dirs()[i];
  out << "\n";
  for (PluginKind k : all_plugin_kinds()) {
    if (!kind_filter.empty() && kind_filter != section_name(k)) continue;
    out << "\n" << section_name(k) << " (" << interface_name(k) << ")\n";
    bool any = false;
    for (const auto& p : all) {
      if (p->kind != k) continue;
      any = true;
      out << "  " << std::left << std::setw(16) << p->name << " " << std::setw(8) << p->version << " " << p->summary
          << "\n      from " << p->path << "\n";
      for (const auto& o : p->options) {
        std::ostringstream r;
        if (o.min || o.max) r << " " << range_text(o);
        if (!o.choices.empty()) {
          r << " {";
          for (std::size_t i = 0; i < o.choices.size(); ++i) r << (i ? "|" : "") << o.choices[i];
          r << "}";
        }
        out << "      " << std::left << std::setw(22) << (o.name + " = " + to_toml(o.default_value)) << " "
            << to_string(o.type) << r.str() << ": " << o.doc << "\n";
      }
    }
    if (!any) out << "  (none)\n";
  }
  for (const auto& p : problems) err << "warning: " << p << "\n";
  return kExitOk;
}

}  // namespace

void add_plugins_command(CommandLine& cl) {
  auto r = std::make_shared<PluginsArgs>();
  CLI::App* c = add_command(cl, "plugins", "list the plugins that can be loaded", kPluginsHelp,
                            [&cl, r](const CLI::App& parsed) {
                              reject_remaining(parsed, kPluginsHelp);
                              return list_plugins(*r, cl.out, cl.err);
                            });
  c->add_option("--kind", r->kind_filter, "one kind only");
  c->add_option("--dir", r->extra, "another directory to search")->allow_extra_args(false);
  c->add_flag("--markdown", r->markdown, "the option tables of docs/manifest.md");
}

}  // namespace hpt::host
