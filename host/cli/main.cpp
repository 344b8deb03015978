// hpt: the thin host. Everything it does lives in hpt_engine (host/src/cli.cpp).
#include <iostream>

#include "cli/cli.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return hpt::host::run_cli(args, std::cout, std::cerr);
}
