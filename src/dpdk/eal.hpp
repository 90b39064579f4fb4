#pragma once
// EAL start-up from the config, with pre-flight checks that turn the usual failures
// (missing hugepages, missing interface, unknown device) into one clear sentence.

#include <stdexcept>
#include <string>
#include <vector>

#include "heartwire/config.hpp"

namespace heartwire::io {

struct setup_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The device name DPDK registers the port under: a vdev's name before the first comma
// ("net_af_xdp0,iface=eth0" -> "net_af_xdp0"), or the PCI address as given.
std::string port_name(const std::string& device);
bool is_vdev(const std::string& device);
// The value of `key=` in a vdev argument string ("iface" of "net_af_packet0,iface=eth0").
std::string vdev_arg(const std::string& device, const std::string& key);
// The kernel interface on the port's own segment, when there is one: the iface= of a
// net_af_xdp / net_af_packet vdev, else [port] kernel_interface in shared mode (a
// bifurcated NIC's netdev; preflight checks that it is the PCI port's). "" in exclusive
// mode for a PCI NIC, net_memif, or net_tap (a tap's kernel side is the DPDK process, not
// the wire).
std::string kernel_interface(const cfg::config& c);

// Where the announcements (GARP, unsolicited NA) of group `g` (cfg.groups order) leave:
// "" when the engine sends them from the DPDK port (exclusive mode, or the group's
// addresses are on the port's own kernel interface: the same wire and MAC), else the
// group's kernel interface, which the control thread sends them from once the kernel
// holds the address (a dedicated heartbeat port: the service is on another interface).
std::string announce_interface(const cfg::config& c, std::size_t g);

// The XDP program the af_xdp PMD is to load (its xdp_prog= devarg), or "" for the PMD's
// default (which hands the whole queue to DPDK): xdp_prog= in port.device as given;
// port.xdp_prog when set ("none": the default); heartwire's own steering program in shared
// mode, so the kernel keeps serving the address; the default in exclusive mode. Not af_xdp: "".
std::string xdp_program(const cfg::config& c);
// heartwire's steering object: the build tree's when this heartwired runs from the build
// tree, else the installed one.
std::string steering_object();

// argv for rte_eal_init: program name, [port] eal args, then `extra` (after `--` on the
// command line), then --vdev / -a for the device unless the args already name it.
std::vector<std::string> eal_argv(const cfg::config& c, const std::vector<std::string>& extra);

// Checks what can be checked before EAL: hugepages when the args need them, the kernel
// interface a vdev binds to, the shared-mode kernel interfaces (port.kernel_interface, a
// PCI port's being its own netdev, and every group's), and that echo probes are not asked
// of a group announced from another interface. Throws setup_error.
void preflight(const cfg::config& c, const std::vector<std::string>& argv);

// rte_eal_init; throws setup_error naming rte_errno's cause.
void eal_init(const std::vector<std::string>& argv);
void eal_cleanup() noexcept;

} // namespace heartwire::io
