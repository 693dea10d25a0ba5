//! A loopback "load balancer": one address for the browsers, each new connection
//! forwarded to the next instance in turn, skipping any that refuses (killed). A killed
//! instance takes its open connections with it, as behind a real balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Balancer {
    pub addr: SocketAddr,
    /// Connections forwarded to each instance, in `instances` order.
    pub forwarded: Arc<Vec<AtomicUsize>>,
    /// Connections open to each instance now.
    pub open: Arc<Vec<AtomicUsize>>,
    accept: JoinHandle<()>,
}

impl Balancer {
    pub async fn start(instances: Vec<SocketAddr>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the balancer");
        let addr = listener.local_addr().expect("the balancer's address");
        let forwarded: Arc<Vec<AtomicUsize>> = Arc::new(instances.iter().map(|_| AtomicUsize::new(0)).collect());
        let open: Arc<Vec<AtomicUsize>> = Arc::new(instances.iter().map(|_| AtomicUsize::new(0)).collect());
        let (counts, open_now) = (forwarded.clone(), open.clone());
        let accept = tokio::spawn(async move {
            let mut next = 0;
            while let Ok((inbound, _)) = listener.accept().await {
                let first = next;
                next = (next + 1) % instances.len();
                let (instances, counts, open_now) = (instances.clone(), counts.clone(), open_now.clone());
                // Aborted with the accept loop's runtime at the end of the test.
                tokio::spawn(async move {
                    for k in 0..instances.len() {
                        let n = (first + k) % instances.len();
                        if let Ok(outbound) = TcpStream::connect(instances[n]).await {
                            counts[n].fetch_add(1, Ordering::Relaxed);
                            open_now[n].fetch_add(1, Ordering::Relaxed);
                            pipe(inbound, outbound).await;
                            open_now[n].fetch_sub(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    // Nobody answers: the browser sees the connection close, as it would.
                });
            }
        });
        Balancer { addr, forwarded, open, accept }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways until either side closes.
async fn pipe(mut inbound: TcpStream, mut outbound: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
