//! The etcd connection: members tried one at a time (etcd-client's balanced connect with all
//! members listed fails while any one is down, etcd-client#39), and a call that fails on its
//! member moves to the next one. Writes are not retried here: after a failed transaction the
//! outcome is unknown, and the caller reads back its request id to find out.
use crate::config::ClusterConfig;
use anyhow::Context;
use etcd_client::{Client, ConnectOptions, GetOptions, KeyValue, Txn, TxnResponse};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long one member gets to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take; a leader election takes well under this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// Requests sent to etcd by this process, for the benchmark's requests-per-endpoint figure.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

pub fn requests_sent() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

pub struct Etcd {
    client: Client,
    members: Vec<String>,
    /// The member `client` talks to.
    current: usize,
    options: ConnectOptions,
}

impl Etcd {
    /// Connects to the first member that answers, starting from a different one per host so
    /// that hosts spread over the members.
    pub async fn connect(config: &ClusterConfig) -> anyhow::Result<Etcd> {
        let options = connect_options(config)?;
        let start = crate::fnv::fnv1a64(config.host.as_bytes()) as usize % config.etcd.len().max(1);
        let (client, current) = connect_from(&config.etcd, start, &options).await?;
        Ok(Etcd { client, members: config.etcd.clone(), current, options })
    }

    /// Runs a read (or any call that is safe to repeat) on the current member, moving on to
    /// the next members when it fails.
    async fn retrying<T, F, Fut>(&mut self, call: F) -> anyhow::Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for _ in 0..self.members.len().max(1) {
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            match call(self.client.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    last = Some(e);
                    self.next_member().await?;
                }
            }
        }
        Err(last.map(anyhow::Error::new).unwrap_or_else(|| anyhow::anyhow!("no etcd member")))
            .with_context(|| format!("etcd request failed on every member ({})", self.members.join(", ")))
    }

    async fn next_member(&mut self) -> anyhow::Result<()> {
        let (client, current) = connect_from(&self.members, self.current + 1, &self.options).await?;
        (self.client, self.current) = (client, current);
        Ok(())
    }

    /// Every key under `prefix`, in key order.
    pub async fn get_prefix(&mut self, prefix: &str) -> anyhow::Result<Vec<KeyValue>> {
        let mut r = self.retrying(|mut c| async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }).await?;
        Ok(r.take_kvs())
    }

    pub async fn get(&mut self, key: &str) -> anyhow::Result<Option<KeyValue>> {
        let mut r = self.retrying(|mut c| async move { c.get(key, None).await }).await?;
        Ok(r.take_kvs().into_iter().next())
    }

    /// Writes `key` (no lease); repeating it writes the same.
    pub async fn put(&mut self, key: &str, value: String) -> anyhow::Result<()> {
        self.retrying(|mut c| {
            let value = value.clone();
            async move { c.put(key, value, None).await }
        })
        .await?;
        Ok(())
    }

    /// One transaction, sent once. An error means the outcome is unknown (it may have
    /// committed): the member is switched for what the caller sends next.
    pub async fn txn(&mut self, txn: Txn) -> anyhow::Result<TxnResponse> {
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        match self.client.txn(txn).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = self.next_member().await;
                Err(anyhow::Error::new(e).context("etcd transaction outcome unknown"))
            }
        }
    }

    /// A new lease of `ttl` seconds.
    pub async fn grant(&mut self, ttl: i64) -> anyhow::Result<i64> {
        // A lease granted twice is only a lease left to expire.
        Ok(self.retrying(|mut c| async move { c.lease_grant(ttl, None).await }).await?.id())
    }

    /// Renews `lease` once; Ok(false) when it has expired.
    pub async fn keep_alive_once(&mut self, lease: i64) -> anyhow::Result<bool> {
        let ttl = self
            .retrying(|mut c| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                Ok(stream.message().await?.map_or(0, |m| m.ttl()))
            })
            .await?;
        Ok(ttl > 0)
    }

    /// Seconds left on `lease`; None once it has expired.
    pub async fn time_to_live(&mut self, lease: i64) -> anyhow::Result<Option<i64>> {
        let ttl = self.retrying(|mut c| async move { c.lease_time_to_live(lease, None).await }).await?.ttl();
        Ok((ttl > 0).then_some(ttl))
    }
}

fn connect_options(config: &ClusterConfig) -> anyhow::Result<ConnectOptions> {
    let mut options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(REQUEST_TIMEOUT);
    if let Some(tls) = &config.tls {
        let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        let mut t = etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca_file)?));
        if let Some((cert, key)) = &tls.client {
            t = t.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(t);
    }
    Ok(options)
}

/// Connects to one member at a time, from `start` round the list, and checks each answers.
async fn connect_from(members: &[String], start: usize, options: &ConnectOptions) -> anyhow::Result<(Client, usize)> {
    let mut errors = Vec::new();
    for i in 0..members.len() {
        let index = (start + i) % members.len();
        let member = &members[index];
        let attempt = async {
            let mut client = Client::connect([member], Some(options.clone())).await?;
            REQUESTS.fetch_add(1, Ordering::Relaxed);
            client.status().await?;
            Ok::<_, etcd_client::Error>(client)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
            Ok(Ok(client)) => return Ok((client, index)),
            Ok(Err(e)) => errors.push(format!("{member}: {e}")),
            Err(_) => errors.push(format!("{member}: no answer in {:?}", CONNECT_TIMEOUT * 2)),
        }
    }
    anyhow::bail!("no etcd member answers ({})", errors.join("; "))
}
