#pragma once
// heartwired's control thread: everything slow or blocking that the engine asks for
// (netlink, hooks, logs), the control socket heartwirectl talks to, and the health checks.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "control/address_keeper.hpp"
#include "control/announcer.hpp"
#include "control/group_control.hpp"
#include "control/ctl_socket.hpp"
#include "control/health.hpp"
#include "control/http_endpoint.hpp"
#include "control/log.hpp"
#include "control/hook_queue.hpp"
#include "control/hooks.hpp"
#include "control/link_watch.hpp"
#include "control/netlink.hpp"
#include "control/service_manager.hpp"
#include "dpdk/engine.hpp"
#include "dpdk/xdp_steer.hpp"
#include "heartwire/auth.hpp"
#include "heartwire/config.hpp"
#include "status.hpp"

namespace heartwire::app {

class control_loop {
public:
    // `keys`: keyed mode's keys as loaded at start (the engine signs with them from its
    // first frame); later changes of auth.key_file are picked up every second.
    control_loop(const cfg::config& c, io::engine& e, std::vector<auth::key> keys);

    // Shared mode starts from a clean slate (and lets secondaries be promoted), with the
    // kernel interface's ARP set up for staging the primary address on lo.
    void prepare_kernel_interface();
    void open_steering();
    // Signals the daemon's handler records for the control thread to act on.
    static constexpr unsigned sig_reload = 1, sig_dump = 2, sig_debug = 4;
    // `eal_extra`: the command line's EAL arguments, which a reloaded file is checked against.
    void watch_signals(std::atomic<unsigned>* bits, std::string config_path, std::vector<std::string> eal_extra = {}) {
        signals_ = bits;
        config_path_ = std::move(config_path);
        eal_extra_ = std::move(eal_extra);
    }
    // Runs until `engine_running` drops, then carries out the engine's last actions.
    void run(const std::atomic<bool>& engine_running);

private:
    void turn(std::chrono::milliseconds wait);
    void on_event(const io::control_event& ev);
    void on_hook_done(const control::hook_completion& c);
    void on_other_hook_done(const control::hook_result& r);
    void on_address(const io::control_event& ev);
    void on_announce(const io::control_event& ev);
    void check_health();
    void check_link();
    void report_sched();
    void check_keys();
    bool install_keys(const std::vector<auth::key>& keys, std::string& error);
    bool load_keys(std::vector<auth::key> file_keys, std::string& error);
    std::string switchover(std::size_t g);
    std::string group_tag(std::size_t g) const { return gc_.group_tag(g); } // "group 7: " with many groups, else ""
    std::size_t group_index(std::uint32_t id) const; // npos: no such group
    std::string handle(std::string_view req);
    void remember(std::uint64_t wall_ns, std::string text);

    // The running configuration: as started, with what reloads applied (the engine keeps
    // the one it started with for what never changes live: port, engine, addresses).
    cfg::config c_;
    io::engine& e_;
    control::hook_runner hooks_;
    control::hook_queue queue_; // every hook but health checks: one run per kind at a time
    std::unique_ptr<control::netlink> nl_;
    std::unique_ptr<io::xdp_steer> steer_; // af_xdp with heartwire's steering program
    // Per address group (cfg.groups order).
    struct group_ctl {
        std::string iface;              // the kernel interface that carries its addresses (shared mode)
        // Its announcements, when they leave from `iface` (io::announce_interface), not from
        // the DPDK port; one announcer per interface (announcers_). Only the addresses the
        // kernel holds there (addrs_) are announced (kernel first).
        control::announcer* announcer{nullptr};
        std::uint64_t not_held{0};      // announcements not sent: the kernel did not hold the address
        std::vector<std::size_t> checks; // indexes of the [[health]] checks that fault this group
    };
    std::vector<group_ctl> g_;
    // Shared mode: the kernel's addresses, following the engine's (events, and reconciled
    // against its published state).
    std::unique_ptr<control::address_keeper> addrs_;
    // Faults merged, drains sequenced, hooks answered (src/control, behind engine_link).
    control::group_control gc_;
    std::map<std::string, std::unique_ptr<control::announcer>> announcers_; // by interface
    std::unique_ptr<control::ctl_server> ctl_;
    std::unique_ptr<control::health_monitor> health_;
    std::deque<takeover_record> takeovers_;
    std::vector<takeover_record> last_takeover_; // per group: its latest (the deque keeps 64 of all)
    std::deque<std::string> notes_;                  // recent notices, for status
    std::chrono::steady_clock::time_point next_reanchor_{};
    control::service_manager sm_;                       // systemd: READY, STATUS, watchdog
    std::unique_ptr<control::http_endpoint> metrics_;   // [control] metrics: Prometheus
    status_inputs status_view();
    std::vector<announce_view> announce_views_; // status_view()'s, kept for the inputs' lifetime
    std::atomic<unsigned>* signals_{nullptr};
    std::string config_path_;
    log::level level_{log::level::info};        // the configured level (SIGUSR2 toggles debug over it)
    bool debug_toggled_{false};
    void on_signals();
    void reload();
    void assign_checks();
    std::vector<std::string> eal_extra_;
    // Reloaded machine knobs the engine may still read (the newest last).
    std::deque<std::unique_ptr<io::params_bundle>> params_;
    std::uint64_t params_gen_{0};
    std::chrono::steady_clock::time_point next_ready_check_{};
    void tell_service_manager(std::chrono::steady_clock::time_point now);
    std::string link_if_;                            // the port's kernel interface, "" when none
    std::unique_ptr<control::link_watch> link_;      // its carrier events, when watched
    bool sched_reported_{false};
    // Keys: the bundles the engine may still use (the newest last) and the key file's
    // identity when last read, so an edit (or a replaced file) is noticed.
    std::deque<std::unique_ptr<io::key_bundle>> bundles_;
    std::uint64_t key_gen_{0};
    std::string key_path_;                             // the file auth.key_file names
    // Keys gone from the file are still accepted (never sent with) for key_retire_grace, so
    // a peer that has not moved to the new send key yet is not cut off (make-before-break).
    std::vector<auth::key> file_keys_;
    struct retiring_key {
        auth::key k;
        std::chrono::steady_clock::time_point until;
    };
    std::vector<retiring_key> retiring_;
    struct file_id {
        std::uint64_t dev{}, ino{}, size{};
        std::int64_t mtime_ns{};
        bool operator==(const file_id&) const = default;
    } key_id_{};
    file_id key_file_identity() const;
    std::chrono::steady_clock::time_point next_key_check_{};
    // The machine's answer to the last switchover command (note and arg), for heartwirectl.
    bool switchover_answered_{false};
    fsm::note switchover_note_{};
    std::uint32_t switchover_arg_{};
    std::size_t switchover_group_{0};
};

} // namespace heartwire::app
