//! `spawn`: every listener in its own tokio task, the payload shared (never cloned).
//!
//! Two slow listeners run concurrently, so the dispatch takes about as long as the slowest one; a
//! third fails. Also shows a detached dispatch and what happens with no runtime.
//! Run: `cargo run --example spawn`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_bus::prelude::*;

/// Large and not `Clone`: `spawn` shares it between tasks through an `Arc`.
#[event]
struct ImageUploaded {
    name: String,
    bytes: Vec<u8>,
}

async fn make_thumbnail(image: Arc<ImageUploaded>) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!(
        "thumbnail: {} ({} bytes) done",
        image.name,
        image.bytes.len()
    );
}

async fn scan_for_viruses(image: Arc<ImageUploaded>) -> Result<(), std::io::Error> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("scanner: {} is clean", image.name);
    Ok(())
}

fn broken_indexer(_: &ImageUploaded) {
    panic!("search index is read-only");
}

#[tokio::main]
async fn main() {
    std::panic::set_hook(Box::new(|_| {}));

    ImageUploaded::listener()
        .name("thumbnail")
        .register_async(make_thumbnail);
    ImageUploaded::listener()
        .name("scanner")
        .register_async(scan_for_viruses);
    ImageUploaded::listener()
        .name("indexer")
        .register(broken_indexer);

    let started = Instant::now();
    let report = ImageUploaded {
        name: "cat.png".into(),
        bytes: vec![0; 1 << 20],
    }
    .spawn()
    .await;
    println!("report after {:?}: {report}", started.elapsed());

    // Fire and forget: the listeners keep running after the Dispatch is dropped.
    ImageUploaded {
        name: "dog.png".into(),
        bytes: vec![0; 1024],
    }
    .spawn()
    .detach();
    tokio::time::sleep(Duration::from_millis(150)).await;

    // Outside a runtime nothing can be spawned: every listener is reported, nothing panics.
    let created_without_runtime = std::thread::spawn(|| {
        ImageUploaded {
            name: "bird.png".into(),
            bytes: Vec::new(),
        }
        .spawn()
    })
    .join();
    match created_without_runtime {
        Ok(dispatch) => println!("no runtime: {}", dispatch.await),
        Err(_) => println!("no runtime: the thread panicked"),
    }
}
