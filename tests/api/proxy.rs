//! A TCP proxy the test can cut: what a network partition between one node
//! and PostgreSQL looks like to that node (its connections drop, new ones
//! are refused), while the other nodes still reach the database.

#![allow(dead_code)]

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (cuts, generation) = watch::channel(0u64);
        let is_cut = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if is_cut.load(Ordering::SeqCst) {
                    drop(client); // refused while cut
                    continue;
                }
                let mut generation = generation.clone();
                let start = *generation.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = generation.wait_for(|g| *g != start) => {} // cut: both ends drop
                    }
                });
            }
        });
        Proxy { port, cut, cuts }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|g| *g += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// The database URL through the proxy (same database as `url`).
    pub fn url(&self, url: &str) -> String {
        let (before, after) = url.split_once("@127.0.0.1:").expect("a loopback URL");
        let path = after.split_once('/').map(|(_, p)| p).unwrap_or("");
        format!("{before}@127.0.0.1:{}/{path}", self.port)
    }
}
