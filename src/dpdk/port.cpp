#include "dpdk/port.hpp"

#include <string>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "dpdk/eal.hpp"
#include "heartwire/wire.hpp"

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

// rte_flow's account of a refusal: the PMD's message when it gave one, and the errno.
std::string flow_reason(const rte_flow_error& e, int rc) {
    const std::string errno_text = rte_strerror(-rc);
    if (!e.message || !*e.message || errno_text == e.message) return errno_text; // rte_flow's own default
    return std::string(e.message) + " (" + errno_text + ")";
}

// The bifurcated layout's one rule per VLAN: heartwire's EtherType to RX queue 0 (isolated,
// nothing else comes). ARP and ND stay with the kernel, which serves the addresses; the
// engine's discovery learns who holds what from the peers' announces.
void steer_heartwire(std::uint16_t port_id, std::uint16_t vid, const std::string& dev) {
    rte_flow_attr attr{};
    attr.ingress = 1;
    rte_flow_item_eth eth{}, eth_mask{};
    rte_flow_item_vlan vlan{}, vlan_mask{};
    rte_flow_item pattern[3]{};
    pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
    if (vid == 0) {
        eth.type = rte_cpu_to_be_16(wire::ethertype_heartwire);
        eth_mask.type = 0xffff;
        pattern[0].spec = &eth;
        pattern[0].mask = &eth_mask;
        pattern[1].type = RTE_FLOW_ITEM_TYPE_END;
    } else {
        vlan.tci = rte_cpu_to_be_16(vid);
        vlan_mask.tci = rte_cpu_to_be_16(0x0fff);
        vlan.inner_type = rte_cpu_to_be_16(wire::ethertype_heartwire);
        vlan_mask.inner_type = 0xffff;
        pattern[1].type = RTE_FLOW_ITEM_TYPE_VLAN;
        pattern[1].spec = &vlan;
        pattern[1].mask = &vlan_mask;
        pattern[2].type = RTE_FLOW_ITEM_TYPE_END;
    }
    rte_flow_action_queue queue{};
    queue.index = 0;
    rte_flow_action actions[2]{};
    actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
    actions[0].conf = &queue;
    actions[1].type = RTE_FLOW_ACTION_TYPE_END;
    rte_flow_error err{};
    if (rte_flow_create(port_id, &attr, pattern, actions, &err) == nullptr)
        throw setup_error("port.flow_isolate: " + dev + " refused the rte_flow rule steering EtherType 0x88B5" +
                          (vid ? " in VLAN " + std::to_string(vid) : std::string{}) + " to its RX queue: " +
                          flow_reason(err, -rte_errno));
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

    // Isolated before the port is configured, as rte_flow asks (rte_flow_isolate()): the
    // PMD may otherwise have set up default rules that conflict.
    if (o.flow_isolate) {
        rte_flow_error err{};
        const int rc = rte_flow_isolate(id_, 1, &err);
        if (rc != 0)
            throw setup_error("port.flow_isolate: " + o.device_name + " (" + driver_ +
                              ") cannot enter rte_flow isolated mode: " + flow_reason(err, rc) +
                              "; it needs a PMD that steers by rte_flow and leaves the rest to the kernel (a bifurcated "
                              "NIC such as mlx5), or port.flow_isolate = false");
    }
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
    // After the start: a PMD need not keep rules across a stop and start (FLOW_RULE_KEEP).
    // A refused rule closes the port (and the rules made before it) before the error.
    if (o.flow_isolate) {
        try {
            for (const std::uint16_t vid : o.flow_vlans) steer_heartwire(id_, vid, o.device_name + " (" + driver_ + ")");
        } catch (...) {
            stop();
            throw;
        }
    }
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
