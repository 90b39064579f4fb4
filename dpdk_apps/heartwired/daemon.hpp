#pragma once
// heartwired's lifecycle: EAL, port, engine lcores, the control thread, clean shutdown.

#include <string>
#include <vector>

#include "heartwire/config.hpp"

namespace heartwire::app {

// Runs until SIGINT/SIGTERM. Returns the process exit code; setup failures are printed as
// one line naming the cause and return 1.
// config_path: the file `c` came from, re-read on SIGHUP.
int run_daemon(const cfg::config& c, const std::vector<std::string>& extra_eal_args, const std::string& config_path = {});

} // namespace heartwire::app
