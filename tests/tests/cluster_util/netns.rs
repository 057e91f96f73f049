//! Network namespaces for the partition test: each broker gets its own
//! namespace with one address on a private /24, all joined by a bridge in a
//! hub namespace; the test process (in the root namespace) reaches them
//! through one veth whose far end is on that bridge. Everything is created
//! by the test and removed when [`Net`] is dropped (or, if a run was killed,
//! by the next run).
//!
//! A partition is made with blackhole routes inside the namespaces (this
//! machine has no iptables/nft and no tc actions): node A gets a blackhole
//! route to B's address and B one to A's, so A and B drop each other's
//! packets while both still talk to the test client.

use std::process::Command;

/// Runs `ip` with `args`, panicking loudly with its output on failure: the
/// partition test needs root and working namespaces, and must fail rather
/// than skip without them.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `ip {}`: {e} (is iproute2 installed?)",
            args.join(" ")
        )
    });
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}{}\nThe partition test needs root (CAP_NET_ADMIN) and network namespaces.",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip_quiet(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The namespaces and links of one test.
pub struct Net {
    prefix: String,
    subnet: String,
    host_link: String,
    nodes: usize,
    /// Blackhole routes in place: (namespace node, address of the other).
    blackholes: Vec<(usize, String)>,
}

const NS_PREFIX: &str = "millrace-fault-";

/// Removes namespaces left behind by runs that were killed (their pid no
/// longer exists), so they cannot pile up.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid: u32 = match rest.split('-').next().and_then(|p| p.parse().ok()) {
            Some(pid) => pid,
            None => continue,
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            ip_quiet(&["netns", "del", name]);
            let host_link = format!("mf{}c", pid % 100_000);
            ip_quiet(&["link", "del", &host_link]);
        }
    }
}

impl Net {
    /// Creates a hub namespace with a bridge and `nodes` broker namespaces
    /// (node `i` of 1..=nodes at `<subnet>.i`); the root namespace gets
    /// `<subnet>.254` on a veth to the bridge.
    pub fn create(nodes: usize) -> Net {
        assert!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0,
            "the network-partition test must run as root: it creates network namespaces \
             (ip netns add) and veth links"
        );
        remove_stale();
        let pid = std::process::id();
        // A /24 per test process inside 10.213.0.0/16.
        let subnet = format!("10.213.{}", pid % 250 + 1);
        let net = Net {
            prefix: format!("{NS_PREFIX}{pid}"),
            host_link: format!("mf{}c", pid % 100_000),
            subnet,
            nodes,
            blackholes: Vec::new(),
        };
        let hub = net.hub();
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        // The test client's link.
        ip(&[
            "link",
            "add",
            &net.host_link,
            "type",
            "veth",
            "peer",
            "name",
            "host",
            "netns",
            &hub,
        ]);
        ip(&["-n", &hub, "link", "set", "host", "master", "br0"]);
        ip(&["-n", &hub, "link", "set", "host", "up"]);
        let host_addr = format!("{}.254/24", net.subnet);
        ip(&["addr", "add", &host_addr, "dev", &net.host_link]);
        ip(&["link", "set", &net.host_link, "up"]);
        for i in 1..=nodes {
            let ns = net.namespace(i);
            let port = format!("n{i}");
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &port, "up"]);
            let addr = format!("{}/24", net.address(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// The namespace of node `i`.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// The address of node `i`.
    pub fn address(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    /// Cuts node `i` off from every other node (both directions); the test
    /// client still reaches all of them.
    pub fn isolate(&mut self, i: usize) {
        for j in (1..=self.nodes).filter(|&j| j != i) {
            self.blackhole(i, j);
            self.blackhole(j, i);
        }
    }

    fn blackhole(&mut self, from: usize, to: usize) {
        let dest = format!("{}/32", self.address(to));
        ip(&[
            "-n",
            &self.namespace(from),
            "route",
            "add",
            "blackhole",
            &dest,
        ]);
        self.blackholes.push((from, dest));
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for (from, dest) in std::mem::take(&mut self.blackholes) {
            ip(&[
                "-n",
                &self.namespace(from),
                "route",
                "del",
                "blackhole",
                &dest,
            ]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 1..=self.nodes {
            ip_quiet(&["netns", "del", &self.namespace(i)]);
        }
        ip_quiet(&["netns", "del", &self.hub()]);
        ip_quiet(&["link", "del", &self.host_link]);
    }
}
