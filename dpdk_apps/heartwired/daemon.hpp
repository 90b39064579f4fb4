#pragma once
// heartwired's lifecycle: EAL, port, engine lcores, the control thread, clean shutdown.

#include <string>
#include <vector>

#include "heartwire/config.hpp"

namespace heartwire::app {

// Runs until SIGINT/SIGTERM. Returns the process exit code; setup failures are printed as
// one line naming the cause and return 1.
// config_path: the file `c` came from, re-read on SIGHUP.
// heartwired --release-addresses: takes every address of the config's groups (and the
// monitor's staged copies on lo) off the kernel, for systemd's ExecStopPost after a crash
// that took the guard down too. Refused while a heartwired runs on the port (its addresses
// are its own). Returns the exit code.
int release_addresses(const cfg::config& c);

int run_daemon(const cfg::config& c, const std::vector<std::string>& extra_eal_args, const std::string& config_path = {});

} // namespace heartwire::app
