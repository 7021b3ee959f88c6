//! Networks, IP leases and published ports. A pod's lease and ports are
//! claimed in the transaction that inserts the pod (under SQLite's write
//! lock, so ten concurrent `run`s can never share an address or a port) and
//! vanish with its row (ON DELETE CASCADE).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use rusqlite::{params, OptionalExtension};

use super::{sql, Db, PodRow, Result, StateError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub internal: bool,
    pub created: String,
    /// Docker's labels (`labels_json`).
    pub labels: BTreeMap<String, String>,
}

/// A published port as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRow {
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
    pub pod_port: u16,
    /// The pod's route port (`--route`): pod_port is its default port.
    pub route: bool,
}

/// How long the address of a removed pod rests before another pod gets
/// it, when the subnet has others: the host's conntrack keeps a closed
/// connection 120 s (`nf_conntrack_tcp_timeout_time_wait`), the sandbox
/// 60 s, and the checkpoint check must not take the old owner's for the
/// new one's (issue 8).
pub const ADDRESS_REST_SECS: i64 = 120;

/// How the new pod gets its address.
pub enum Lease<'a> {
    /// This address, refused if another pod holds it.
    Fixed(Ipv4Addr),
    /// The first address `pick` returns given the taken ones (None: full).
    Pick(&'a dyn Fn(&HashSet<Ipv4Addr>) -> Option<Ipv4Addr>),
}

const NET_COLS: &str = "name, bridge, subnet, gateway, internal, created, labels_json";

fn net_from_row(r: &rusqlite::Row) -> rusqlite::Result<NetworkRow> {
    Ok(NetworkRow {
        name: r.get(0)?,
        bridge: r.get(1)?,
        subnet: r.get(2)?,
        gateway: r.get(3)?,
        internal: r.get(4)?,
        created: r.get(5)?,
        // Written by gvpod from a map: anything else reads as no labels.
        labels: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
    })
}

impl Db {
    pub fn networks(&self) -> Result<Vec<NetworkRow>> {
        self.query_all(
            &format!("SELECT {NET_COLS} FROM networks ORDER BY created, name"),
            [],
            net_from_row,
        )
    }

    pub fn network(&self, name: &str) -> Result<Option<NetworkRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {NET_COLS} FROM networks WHERE name=?1"),
                [name],
                net_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records a network; a taken name or subnet is refused.
    pub fn insert_network(&mut self, n: &NetworkRow) -> Result<()> {
        self.write(|tx| {
            let res = tx.execute(
                &format!("INSERT INTO networks ({NET_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7)"),
                params![
                    n.name,
                    n.bridge,
                    n.subnet,
                    n.gateway,
                    n.internal,
                    n.created,
                    serde_json::to_string(&n.labels).expect("a map of strings serialises")
                ],
            );
            match res {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, Some(msg)))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    // The bridge name derives from the network name, so a
                    // clash on either (whichever SQLite checks first) is a
                    // clash on the name.
                    if msg.contains("networks.subnet") {
                        Err(StateError::SubnetInUse(n.subnet.clone()))
                    } else {
                        Err(StateError::NetworkExists(n.name.clone()))
                    }
                }
                Err(e) => Err(sql(e)),
            }
        })
    }

    /// Deletes a network row; refused while pods hold leases on it.
    pub fn delete_network(&mut self, name: &str) -> Result<()> {
        self.write(|tx| {
            let mut st = tx
                .prepare(
                    "SELECT p.name FROM leases l JOIN pods p ON p.id=l.pod_id WHERE l.network=?1",
                )
                .map_err(sql)?;
            let users: Vec<String> = st
                .query_map([name], |r| r.get(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?;
            if !users.is_empty() {
                return Err(StateError::NetworkInUse {
                    name: name.to_string(),
                    pods: users.join(", "),
                });
            }
            // Leases of pod rows that are gone (gc's business) must not block.
            tx.execute("DELETE FROM leases WHERE network=?1", [name])
                .map_err(sql)?;
            tx.execute("DELETE FROM networks WHERE name=?1", [name])
                .map_err(sql)?;
            Ok(())
        })
    }

    /// Inserts a pod with its lease on `network` and its published ports,
    /// all or nothing. Returns the leased address.
    pub fn insert_pod_networked(
        &mut self,
        p: &PodRow,
        network: Option<(&str, Lease)>,
        ports: &[PortRow],
    ) -> Result<Option<Ipv4Addr>> {
        let (pod_sql, pod_params) = super::pods::insert_sql(p);
        self.write(|tx| {
            super::pods::map_insert(tx.execute(&pod_sql, rusqlite::params_from_iter(pod_params)), p)?;
            for port in ports {
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT p.name FROM port_bindings b JOIN pods p ON p.id=b.pod_id
                         WHERE b.proto=?1 AND b.host_port=?2
                           AND (b.host_ip=?3 OR b.host_ip='0.0.0.0' OR ?3='0.0.0.0')",
                        params![port.proto, port.host_port, port.host_ip],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql)?;
                if let Some(by) = holder {
                    return Err(StateError::PortTaken {
                        port: format!("{}:{}/{}", port.host_ip, port.host_port, port.proto),
                        by,
                    });
                }
                tx.execute(
                    "INSERT INTO port_bindings (pod_id, proto, host_ip, host_port, pod_port, route) VALUES (?1,?2,?3,?4,?5,?6)",
                    params![p.id, port.proto, port.host_ip, port.host_port, port.pod_port, port.route],
                )
                .map_err(sql)?;
            }
            let Some((net, lease)) = network else {
                return Ok(None);
            };
            let mut st = tx
                .prepare("SELECT l.ip, p.name FROM leases l LEFT JOIN pods p ON p.id=l.pod_id WHERE l.network=?1")
                .map_err(sql)?;
            let taken: Vec<(String, Option<String>)> = st
                .query_map([net], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?;
            let ip = match lease {
                Lease::Fixed(ip) => {
                    if let Some((_, by)) = taken.iter().find(|(t, _)| *t == ip.to_string()) {
                        return Err(StateError::AddressTaken {
                            ip: ip.to_string(),
                            by: by.clone().unwrap_or_else(|| "a removed pod".into()),
                        });
                    }
                    ip
                }
                Lease::Pick(pick) => {
                    let set: HashSet<Ipv4Addr> =
                        taken.iter().filter_map(|(t, _)| t.parse().ok()).collect();
                    // Resting addresses count as taken while others are free.
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let mut st = tx
                        .prepare("SELECT ip FROM freed_leases WHERE network=?1 AND freed_at >= ?2")
                        .map_err(sql)?;
                    let resting: HashSet<Ipv4Addr> = st
                        .query_map(params![net, now - ADDRESS_REST_SECS], |r| {
                            r.get::<_, String>(0)
                        })
                        .map_err(sql)?
                        .filter_map(|r| r.ok()?.parse().ok())
                        .collect();
                    pick(&set.union(&resting).copied().collect())
                        .or_else(|| pick(&set))
                        .ok_or_else(|| StateError::NetworkFull {
                            name: net.to_string(),
                            used: taken.len(),
                        })?
                }
            };
            tx.execute(
                "INSERT INTO leases (network, ip, pod_id) VALUES (?1, ?2, ?3)",
                params![net, ip.to_string(), p.id],
            )
            .map_err(sql)?;
            Ok(Some(ip))
        })
    }

    /// The pod's network and address, if it has one.
    pub fn lease_of(&self, pod_id: &str) -> Result<Option<(String, Ipv4Addr)>> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT network, ip FROM leases WHERE pod_id=?1",
                [pod_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.and_then(|(n, ip)| ip.parse().ok().map(|ip| (n, ip))))
    }

    /// (address, pod name, pod id) of every lease on a network.
    pub fn leases(&self, network: &str) -> Result<Vec<(Ipv4Addr, String, String)>> {
        let rows: Vec<(String, String, String)> = self.query_all(
            "SELECT l.ip, p.name, p.id FROM leases l JOIN pods p ON p.id=l.pod_id WHERE l.network=?1 ORDER BY l.ip",
            [network],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(ip, n, id)| ip.parse().ok().map(|ip| (ip, n, id)))
            .collect())
    }

    /// Every host TCP port a pod holds (published or route), whatever its
    /// address: what an automatic route port must not pick.
    pub fn tcp_host_ports(&self) -> Result<std::collections::HashSet<u16>> {
        let rows: Vec<u16> = self.query_all(
            "SELECT host_port FROM port_bindings WHERE proto='tcp'",
            [],
            |r| r.get(0),
        )?;
        Ok(rows.into_iter().collect())
    }

    pub fn ports_of(&self, pod_id: &str) -> Result<Vec<PortRow>> {
        self.query_all(
            "SELECT proto, host_ip, host_port, pod_port, route FROM port_bindings WHERE pod_id=?1 ORDER BY rowid",
            [pod_id],
            |r| {
                Ok(PortRow {
                    proto: r.get(0)?,
                    host_ip: r.get(1)?,
                    host_port: r.get(2)?,
                    pod_port: r.get(3)?,
                    route: r.get(4)?,
                })
            },
        )
    }

    /// Drops leases and port bindings whose pod row is gone (rows deleted
    /// without foreign keys enforced). Returns how many.
    pub fn drop_orphan_claims(&mut self) -> Result<usize> {
        self.write(|tx| {
            let a = tx
                .execute(
                    "DELETE FROM leases WHERE pod_id NOT IN (SELECT id FROM pods)",
                    [],
                )
                .map_err(sql)?;
            let b = tx
                .execute(
                    "DELETE FROM port_bindings WHERE pod_id NOT IN (SELECT id FROM pods)",
                    [],
                )
                .map_err(sql)?;
            Ok(a + b)
        })
    }
}
