#include "dpdk/port.hpp"

#include <string>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "dpdk/eal.hpp"

namespace heartwire::io {

namespace {

std::string known_ports() {
    std::string s;
    std::uint16_t pid;
    RTE_ETH_FOREACH_DEV(pid) {
        char name[RTE_ETH_NAME_MAX_LEN];
        if (rte_eth_dev_get_name_by_port(pid, name) == 0) s += (s.empty() ? "" : ", ") + std::string(name);
    }
    return s.empty() ? "none" : s;
}

void check(int rc, const char* what, const std::string& dev) {
    if (rc < 0) throw setup_error(std::string(what) + " failed on " + dev + ": " + rte_strerror(-rc));
}

} // namespace

// The EAL interrupt thread calls this on a link state change (DESIGN "failure evidence" 2).
namespace {
int lsc_event(std::uint16_t port_id, rte_eth_event_type /*type*/, void* arg, void* /*ret*/) {
    rte_eth_link l{};
    if (rte_eth_link_get_nowait(port_id, &l) == 0) static_cast<const port*>(arg)->notify_link(l.link_status == RTE_ETH_LINK_UP);
    return 0;
}
} // namespace

void port::on_link(void (*cb)(void* arg, bool up), void* arg) noexcept {
    if (!lsc_ || link_cb_) return;
    link_cb_ = cb; // set before the interrupt thread can call it
    link_arg_ = arg;
    rte_eth_dev_callback_register(id_, RTE_ETH_EVENT_INTR_LSC, lsc_event, this);
}

bool port::link_up() const noexcept {
    rte_eth_link l{};
    return rte_eth_link_get_nowait(id_, &l) != 0 || l.link_status == RTE_ETH_LINK_UP;
}

port::port(const port_options& o) {
    if (rte_eth_dev_get_port_by_name(o.device_name.c_str(), &id_) != 0)
        throw setup_error("unknown device: DPDK has no port named " + o.device_name + " (ports: " + known_ports() +
                          ")");
    rte_eth_dev_info info{};
    check(rte_eth_dev_info_get(id_, &info), "rte_eth_dev_info_get", o.device_name);
    driver_ = info.driver_name ? info.driver_name : "?";
    const int socket = rte_eth_dev_socket_id(id_) < 0 ? static_cast<int>(rte_socket_id()) : rte_eth_dev_socket_id(id_);

    const std::string pool_name = "hw_pool_" + std::to_string(id_);
    pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), o.mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (!pool_)
        throw setup_error("mbuf pool of " + std::to_string(o.mbufs) + " failed: " + rte_strerror(rte_errno) +
                          " (not enough memory: raise -m or hugepages, or lower port.mbufs)");

    rte_eth_conf conf{};
    // A NIC that interrupts on link changes tells us at once; vdevs over a kernel interface
    // are watched through the kernel's carrier instead (control/link_watch).
    lsc_ = info.dev_flags != nullptr && (*info.dev_flags & RTE_ETH_DEV_INTR_LSC) != 0;
    if (lsc_) conf.intr_conf.lsc = 1; // the callback is registered by on_link()
    check(rte_eth_dev_configure(id_, o.rx_queues, 1, &conf), "rte_eth_dev_configure", o.device_name);
    std::uint16_t nb_rx = static_cast<std::uint16_t>(o.rx_desc), nb_tx = static_cast<std::uint16_t>(o.tx_desc);
    check(rte_eth_dev_adjust_nb_rx_tx_desc(id_, &nb_rx, &nb_tx), "adjusting descriptors", o.device_name);
    for (std::uint16_t q = 0; q < o.rx_queues; ++q)
        check(rte_eth_rx_queue_setup(id_, q, nb_rx, static_cast<unsigned>(socket), nullptr, pool_),
              "rte_eth_rx_queue_setup", o.device_name);
    check(rte_eth_tx_queue_setup(id_, 0, nb_tx, static_cast<unsigned>(socket), nullptr), "rte_eth_tx_queue_setup",
          o.device_name);
    check(rte_eth_dev_start(id_), "rte_eth_dev_start", o.device_name);
    started_ = true;
    // The heartwire group address is multicast; not every PMD can filter, so ask for all.
    rte_eth_promiscuous_enable(id_);
    rte_eth_allmulticast_enable(id_);

    rte_ether_addr a{};
    check(rte_eth_macaddr_get(id_, &a), "rte_eth_macaddr_get", o.device_name);
    for (int i = 0; i < 6; ++i) mac_.b[i] = a.addr_bytes[i];
}

port::port(const port_attach& a) : id_(a.id), tx_queue_(a.tx_queue), mac_(a.mac), pool_(a.pool) {
    if (!rte_eth_dev_is_valid_port(a.id))
        throw setup_error("unknown port id " + std::to_string(a.id) + ": DPDK has no such port (ports: " + known_ports() +
                          "; after rte_eal_init, once the port is probed)");
    const std::string dev = "port " + std::to_string(a.id);
    rte_eth_dev_info info{};
    check(rte_eth_dev_info_get(id_, &info), "rte_eth_dev_info_get", dev);
    driver_ = info.driver_name ? info.driver_name : "?";
    if (a.tx_queue >= info.nb_tx_queues)
        throw setup_error("TX queue " + std::to_string(a.tx_queue) + " of " + dev + " (" + driver_ + ") does not exist: it has " +
                          std::to_string(info.nb_tx_queues) + " (configure one for heartwire, or share the lcore's own)");
    if (!pool_) throw setup_error("no mempool given for the frames heartwire sends on " + dev);
    if (mac_.is_zero()) {
        rte_ether_addr e{};
        check(rte_eth_macaddr_get(id_, &e), "rte_eth_macaddr_get", dev);
        for (int i = 0; i < 6; ++i) mac_.b[i] = e.addr_bytes[i];
    }
}

void port::stop_link_events() noexcept {
    if (!lsc_) return;
    // -EAGAIN: the callback is running right now; wait for it to finish.
    while (rte_eth_dev_callback_unregister(id_, RTE_ETH_EVENT_INTR_LSC, lsc_event, this) == -EAGAIN) rte_pause();
    lsc_ = false;
}

void port::stop() noexcept {
    if (!started_) return;
    started_ = false;
    stop_link_events();
    rte_eth_dev_stop(id_);
    rte_eth_dev_close(id_);
}

port::~port() {
    stop();
    // The pool is released with the EAL's memory at rte_eal_cleanup.
}

} // namespace heartwire::io
