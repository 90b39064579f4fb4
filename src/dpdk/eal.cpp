#include "dpdk/eal.hpp"

#include <net/if.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <rte_eal.h>
#include <rte_errno.h>

namespace heartwire::io {

bool is_vdev(const std::string& device) { return device.rfind("net_", 0) == 0; }

std::string port_name(const std::string& device) { return device.substr(0, device.find(',')); }

std::string vdev_arg(const std::string& device, const std::string& key) {
    std::stringstream ss(device);
    std::string part;
    std::getline(ss, part, ','); // the name
    while (std::getline(ss, part, ','))
        if (part.rfind(key + "=", 0) == 0) return part.substr(key.size() + 1);
    return {};
}

std::string kernel_interface(const cfg::config& c) {
    const std::string drv = port_name(c.port.device);
    if (drv.rfind("net_af_xdp", 0) == 0 || drv.rfind("net_af_packet", 0) == 0) {
        std::string iface = vdev_arg(c.port.device, "iface");
        if (!iface.empty()) return iface;
    }
    return c.port.mode == cfg::address_mode::shared ? c.port.kernel_interface : std::string{};
}

std::string announce_interface(const cfg::config& c, std::size_t g) {
    if (c.port.mode != cfg::address_mode::shared || g >= c.groups.size()) return {};
    const std::string& iface = c.groups[g].interface;
    return iface == kernel_interface(c) ? std::string{} : iface;
}

std::string steering_object() {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    const std::string self = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string{};
    const std::string build_root = HEARTWIRE_BUILD_ROOT "/";
    return self.rfind(build_root, 0) == 0 ? HEARTWIRE_XDP_PROG_BUILD : HEARTWIRE_XDP_PROG_INSTALL;
}

std::string xdp_program(const cfg::config& c) {
    if (port_name(c.port.device).rfind("net_af_xdp", 0) != 0) return {};
    const std::string given = vdev_arg(c.port.device, "xdp_prog");
    if (!given.empty()) return given;
    if (c.port.xdp_prog == "none") return {};
    if (!c.port.xdp_prog.empty()) return c.port.xdp_prog;
    return c.port.mode == cfg::address_mode::shared ? steering_object() : std::string{};
}

std::vector<std::string> eal_argv(const cfg::config& c, const std::vector<std::string>& extra) {
    std::vector<std::string> v{"heartwired"};
    v.insert(v.end(), c.port.eal_args.begin(), c.port.eal_args.end());
    v.insert(v.end(), extra.begin(), extra.end());
    const std::string name = port_name(c.port.device);
    const bool named = std::any_of(v.begin(), v.end(), [&](const std::string& a) {
        return a.find(name) != std::string::npos;
    });
    if (!named) {
        if (is_vdev(c.port.device)) {
            const std::string prog = xdp_program(c);
            const bool given = !vdev_arg(c.port.device, "xdp_prog").empty();
            v.push_back("--vdev=" + c.port.device + (prog.empty() || given ? std::string{} : ",xdp_prog=" + prog));
        } else {
            v.push_back("-a");
            v.push_back(c.port.device);
        }
    }
    return v;
}

namespace {

bool has_arg(const std::vector<std::string>& argv, const std::string& a) {
    return std::find(argv.begin(), argv.end(), a) != argv.end();
}

long meminfo(const std::string& key) {
    std::ifstream f("/proc/meminfo");
    std::string k;
    long v = 0;
    while (f >> k) {
        if (k == key + ":") {
            f >> v;
            return v;
        }
        f.ignore(256, '\n');
    }
    return -1;
}

// A memif server killed with SIGKILL leaves its socket file behind, and the next server on
// that path fails with EADDRINUSE. Remove it when nobody listens on it any more.
void clear_stale_memif_socket(const std::string& device) {
    if (port_name(device).rfind("net_memif", 0) != 0 || vdev_arg(device, "role") != "server") return;
    if (vdev_arg(device, "socket-abstract") != "no") return; // abstract sockets vanish with their owner
    const std::string path = vdev_arg(device, "socket");
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) return;
    struct stat st{};
    if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size());
    const bool alive = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (!alive) unlink(path.c_str());
}

// The PCI function a kernel netdev belongs to (/sys/class/net/<ifname>/device links to it),
// or "" for a virtual interface (veth, bond, VLAN, bridge).
std::string pci_function_of(const std::string& ifname) {
    char target[4096];
    const std::string link = "/sys/class/net/" + ifname + "/device";
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) return {};
    const std::string t(target, static_cast<std::size_t>(n));
    return t.substr(t.rfind('/') + 1);
}

// "3b:00.1" and "0000:3B:00.1" name the same function (DPDK takes both for -a).
std::string full_pci_address(std::string a) {
    a = port_name(a); // devargs after a comma are not part of it
    std::transform(a.begin(), a.end(), a.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return std::count(a.begin(), a.end(), ':') == 1 ? "0000:" + a : a;
}

} // namespace

// A heartwired killed with SIGKILL leaves its steering program attached (the PMD attaches it
// by netlink, not by a link that dies with the process), and the PMD then refuses to attach
// it again ("XDP program already attached"). Only heartwire's own program is taken off.
void detach_stale_steering(const std::string& iface) {
    const int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
    if (ifindex == 0) return;
    for (const std::uint32_t mode : {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE}) {
        std::uint32_t id = 0;
        if (bpf_xdp_query_id(ifindex, static_cast<int>(mode), &id) != 0 || id == 0) continue;
        const int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0) continue;
        bpf_prog_info info{};
        std::uint32_t len = sizeof info;
        const bool ours = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::strcmp(info.name, "heartwire_steer") == 0;
        ::close(fd);
        if (!ours) continue;
        if (bpf_xdp_detach(ifindex, static_cast<int>(mode), nullptr) != 0)
            throw setup_error("a stale heartwire XDP program (id " + std::to_string(id) + ") is attached to " + iface +
                              " and cannot be detached: run `ip link set dev " + iface + " xdp off`");
    }
}

void preflight(const cfg::config& c, const std::vector<std::string>& argv) {
    if (!has_arg(argv, "--no-huge") && meminfo("HugePages_Total") <= 0) {
        throw setup_error(
            "hugepages needed but none are allocated: run `echo 256 > /proc/sys/vm/nr_hugepages` "
            "(and mount hugetlbfs on /dev/hugepages), or add \"--no-huge\", \"-m\", \"256\" to "
            "[port] eal for af_packet/af_xdp ports");
    }
    if (is_vdev(c.port.device)) {
        // af_xdp and af_packet bind to an interface that must exist; net_tap makes its own.
        const std::string drv = port_name(c.port.device);
        const bool binds = drv.rfind("net_af_xdp", 0) == 0 || drv.rfind("net_af_packet", 0) == 0;
        const std::string iface = binds ? vdev_arg(c.port.device, "iface") : std::string{};
        if (!iface.empty() && if_nametoindex(iface.c_str()) == 0)
            throw setup_error("interface missing: " + iface + " (port.device = \"" + c.port.device +
                              "\") does not exist in this network namespace");
        static const char* known[] = {"net_af_xdp", "net_af_packet", "net_memif", "net_tap", "net_ring", "net_null",
                                      "net_pcap"};
        if (std::none_of(std::begin(known), std::end(known),
                         [&](const char* k) { return drv.rfind(k, 0) == 0; }))
            throw setup_error("unknown device: " + drv +
                              " (port.device): use net_af_xdp<N>, net_af_packet<N>, net_memif<N>, "
                              "net_tap<N> or a PCI address bound with dpdk-devbind.py");
    }
    clear_stale_memif_socket(c.port.device);
    const std::string prog = xdp_program(c);
    if (!prog.empty() && ::access(prog.c_str(), R_OK) != 0)
        throw setup_error("XDP program missing: " + prog + " (" + std::strerror(errno) +
                          "); it is built into bpf/ and installed with heartwire; set port.xdp_prog to its path, "
                          "or \"none\" for the PMD's default (then the kernel gets no traffic from the queue)");
    if (!prog.empty()) detach_stale_steering(vdev_arg(c.port.device, "iface"));
    if (c.port.mode != cfg::address_mode::shared) return;
    const std::string& kif = c.port.kernel_interface;
    if (!kif.empty() && if_nametoindex(kif.c_str()) == 0)
        throw setup_error("interface missing: port.kernel_interface = \"" + kif +
                          "\" does not exist in this network namespace");
    // A PCI port's kernel_interface is taken for the port's own netdev (a bifurcated NIC):
    // the engine sends the GARPs from the port. Any other interface there would get them
    // from the wrong port with the wrong MAC (a dedicated heartbeat port): refused.
    if (!kif.empty() && !is_vdev(c.port.device) && pci_function_of(kif) != full_pci_address(c.port.device))
        throw setup_error("port.kernel_interface = \"" + kif + "\" is not the kernel netdev of PCI port " +
                          port_name(c.port.device) +
                          " (a bifurcated NIC's): with a dedicated heartbeat port, name the service interface in "
                          "each [[group]] as interface = \"" + kif + "\" and leave port.kernel_interface unset");
    for (std::size_t g = 0; g < c.groups.size(); ++g) {
        const std::string& gif = c.groups[g].interface;
        if (gif != kif && if_nametoindex(gif.c_str()) == 0)
            throw setup_error("interface missing: group[" + std::to_string(g) + "].interface = \"" + gif +
                              "\" does not exist in this network namespace");
        // The monitor's echo probes leave from the port and reach the primary's kernel on the
        // heartbeat link, which does not serve the address there: they would prove nothing.
        if (c.detect.probe != cfg::probe_kind::heartbeat && !announce_interface(c, g).empty())
            throw setup_error("detect.probe = \"" + std::string(cfg::to_string(c.detect.probe)) + "\" cannot probe group " +
                              std::to_string(c.groups[g].id) + ": its addresses are on " + gif +
                              ", not on the DPDK port's segment (a dedicated heartbeat port); use \"heartbeat\"");
    }
}

void eal_init(const std::vector<std::string>& argv) {
    std::vector<char*> cargv;
    std::vector<std::string> copy = argv; // rte_eal_init may permute argv
    for (auto& a : copy) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    if (rte_eal_init(static_cast<int>(copy.size()), cargv.data()) < 0) {
        std::string why = rte_errno ? rte_strerror(rte_errno) : "see the EAL messages above";
        if (rte_errno == 0 || rte_errno == EBUSY)
            why += " (another DPDK process with the same --file-prefix may be running)";
        if (rte_errno == ENOMEM || rte_errno == EACCES)
            why += " (hugepages? try --no-huge -m 256 for af_packet/af_xdp, or allocate hugepages)";
        if (rte_errno == EALREADY) why += " (EAL already initialised)";
        if (rte_errno == ENODEV || rte_errno == EINVAL)
            why += " (check [port] eal and port.device; unknown vdev drivers are rejected here)";
        throw setup_error("EAL init failed: " + why);
    }
}

void eal_cleanup() noexcept { rte_eal_cleanup(); }

} // namespace heartwire::io
