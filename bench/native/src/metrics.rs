//! The baseline's reconcile counter, served as the host serves its own
//! (`controller_runtime_reconcile_total{controller,result}` in Prometheus
//! text on `GET /metrics`), so the benchmark reads both sides the same way.
//! Only with `--metrics-addr`: a hand-written controller need not have one,
//! and the older scenarios run without it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reconciles so far, by result.
#[derive(Debug, Default)]
pub struct Reconciles {
    success: AtomicU64,
    error: AtomicU64,
}

impl Reconciles {
    /// Counts one reconcile.
    pub fn count(&self, success: bool) {
        let counter = if success { &self.success } else { &self.error };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counter as Prometheus text.
    fn text(&self, controller: &str) -> String {
        format!(
            "# TYPE controller_runtime_reconcile_total counter\n\
             controller_runtime_reconcile_total{{controller=\"{controller}\",result=\"success\"}} {}\n\
             controller_runtime_reconcile_total{{controller=\"{controller}\",result=\"error\"}} {}\n",
            self.success.load(Ordering::Relaxed),
            self.error.load(Ordering::Relaxed),
        )
    }
}

/// Serves `reconciles` on `addr` until the process ends. Every request,
/// whatever its path, gets the page: the benchmark is the only client.
pub async fn serve(
    addr: SocketAddr,
    controller: String,
    reconciles: Arc<Reconciles>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let body = reconciles.text(&controller);
            tokio::spawn(async move {
                // The request itself does not matter; read its head so the
                // client is not reset before it reads the answer.
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
}
