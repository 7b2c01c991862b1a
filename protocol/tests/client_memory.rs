//! The client session's heap as a browser's session worker holds it: garbled tables and online
//! labels bypass the session ([`ClientSession::handle_garbled_head`],
//! [`ClientSession::handle_labels_head`]), jobs and outgoing frames leave it as soon as they are
//! polled (a worker copies them out of its wasm memory), and evaluation runs
//! elsewhere. A metering allocator counts only what the client session allocates; the peak is
//! reported per phase. In a wasm worker that peak is the memory the worker keeps for good.
#![cfg(not(target_arch = "wasm32"))]

use cryptonas_alloc_meter::Meter;
use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    ClientInput, ClientSession, EvalTask, GarbledLayout, LocalWorkers, MsgKind, Output,
    ServerModel, ServerSession, Session, LABELS_HEAD,
};
use std::sync::Arc;

#[global_allocator]
static HEAP: Meter = Meter::new();

/// Peak client heap (bytes above the start) seen while handling each kind of frame.
#[derive(Default, Debug)]
struct Peaks(Vec<(String, usize)>);

impl Peaks {
    fn note(&mut self, what: &str, peak: usize) {
        match self.0.iter_mut().find(|(w, _)| w == what) {
            Some((_, p)) => *p = (*p).max(peak),
            None => self.0.push((what.to_owned(), peak)),
        }
    }

    fn max(&self) -> usize {
        self.0.iter().map(|(_, p)| *p).max().unwrap_or(0)
    }
}

/// One private inference driven as the browser drives it; returns the client's peaks.
fn browser_like_peaks(model: &Arc<ServerModel>, x: &[f32]) -> Peaks {
    let base = HEAP.live();
    let mut peaks = Peaks::default();
    let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
    HEAP.reset_peak();
    let mut client = HEAP.metered(|| {
        ClientSession::new(
            ClientInput::Normalised(x.to_vec()),
            Csprng::from_entropy().unwrap(),
        )
    });
    peaks.note("start", HEAP.peak() - base);
    let mut workers = LocalWorkers::default();
    // Tables and decoding bits of garbled frames, in arrival order, for their `Store` jobs.
    let mut bulks = std::collections::VecDeque::new();
    // The last `ServerLabels` frame, kept by the transport.
    let mut labels_frame = Vec::new();
    loop {
        // Drain the client: frames and jobs leave its heap as they are polled.
        let mut frames = Vec::new();
        let mut jobs = Vec::new();
        loop {
            HEAP.reset_peak();
            let live = HEAP.live().saturating_sub(base);
            let out = HEAP.metered(|| client.poll_output()).unwrap();
            let what = match &out {
                Some(Output::Frame(f)) => format!("making {:?}", MsgKind::from_tag(f[0]).unwrap()),
                Some(Output::Job(_)) => "making a job".to_owned(),
                _ => "poll".to_owned(),
            };
            peaks.note(&what, HEAP.peak().saturating_sub(base));
            peaks.note(&format!("{what} (live before)"), live);
            match out {
                // Copied out, then freed (metering off: the free still counts).
                Some(Output::Frame(f)) => frames.push(copy(f)),
                Some(Output::Job(EvalTask::Store(mut job))) => {
                    // The job left the session (copied out of a worker's memory); the browser's
                    // transport attaches the frame's bulk on the way to the evaluator.
                    let (tables, decoding) = bulks.pop_front().expect("a garbled frame's bulk");
                    job.tables = tables;
                    job.decoding = decoding;
                    job.client_labels = zeroize::Zeroizing::new(job.client_labels.to_vec());
                    jobs.push(EvalTask::Store(job));
                }
                Some(Output::Job(EvalTask::Evaluate {
                    id,
                    garbler_labels,
                    labels_at,
                })) => {
                    // The transport cuts the chunk's labels from the frame it kept.
                    assert!(garbler_labels.is_empty());
                    jobs.push(EvalTask::Evaluate {
                        id,
                        garbler_labels: labels_frame[labels_at.clone()].to_vec(),
                        labels_at,
                    });
                }
                Some(Output::Finished) => {
                    assert!(client.outcome().is_some());
                    return peaks;
                }
                None => break,
            }
        }
        let results = if jobs.is_empty() {
            Vec::new()
        } else {
            workers.run(jobs).unwrap()
        };
        for f in frames {
            server.handle(&f).unwrap();
        }
        if !results.is_empty() {
            for (id, shares) in results {
                HEAP.reset_peak();
                HEAP.metered(|| client.complete_job(id, &shares)).unwrap();
                peaks.note("job results", HEAP.peak().saturating_sub(base));
            }
            continue;
        }
        let Some(Output::Frame(frame)) = server.poll_output().unwrap() else {
            panic!("the server has nothing to send and the client waits");
        };
        let kind = MsgKind::from_tag(frame[0]).unwrap();
        HEAP.reset_peak();
        if kind == MsgKind::ServerGarbled {
            let at = GarbledLayout::read(&frame, frame.len()).unwrap();
            HEAP.metered(|| {
                let head = frame[..GarbledLayout::HEAD].to_vec();
                let corrections = frame[at.corrections.clone()].to_vec();
                client.handle_garbled_head(&head, &corrections, frame.len())
            })
            .unwrap();
            peaks.note("ServerGarbled head", HEAP.peak().saturating_sub(base));
            bulks.push_back((frame[at.tables].to_vec(), frame[at.decoding].to_vec()));
        } else if kind == MsgKind::ServerLabels {
            HEAP.metered(|| {
                let head = frame[..LABELS_HEAD].to_vec();
                client.handle_labels_head(&head, frame.len())
            })
            .unwrap();
            peaks.note("ServerLabels head", HEAP.peak().saturating_sub(base));
            labels_frame = frame;
        } else {
            HEAP.metered(|| {
                let inside = frame.to_vec();
                client.handle(&inside)
            })
            .unwrap();
            peaks.note(&format!("{kind:?}"), HEAP.peak().saturating_sub(base));
        }
    }
}

/// A copy made with metering off, so that dropping the original lowers the client's count.
fn copy(f: Vec<u8>) -> Vec<u8> {
    let c = f.clone();
    drop(f);
    c
}

/// Serves a bundled model (`models/<name>.*`).
fn bundled(name: &str) -> Arc<ServerModel> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let json = dir.join(format!("{name}.json"));
    let model = cryptonas_model::Model::load(&json, json.with_extension("safetensors")).unwrap();
    Arc::new(ServerModel::new(name, &model).unwrap())
}

fn print(name: &str, peaks: &Peaks) {
    for (what, p) in &peaks.0 {
        eprintln!("{what:>34}: {:.1} MB", *p as f64 / 1e6);
    }
    eprintln!("{name}: client peak {:.1} MB", peaks.max() as f64 / 1e6);
}

/// At the largest bundled model (86,016 ReLUs: a 32-MiB OT matrix, 32 MiB of OT labels, 9-MiB
/// labels frames) the session's heap stays in single-digit MiB: nothing of the OT's or a layer's
/// size is held whole. It was 36 MB before the matrix went in parts and the labels were
/// regenerated per chunk, 18 MB before the labels frames bypassed the session.
#[test]
fn the_client_heap_stays_in_single_digit_mib_at_86k_relus() {
    let model = bundled("cnet1-c14");
    let x = vec![0.1f32; model.plan().input_len()];
    let peaks = browser_like_peaks(&model, &x);
    print("cnet1-c14", &peaks);
    assert!(peaks.max() < 9 << 20, "client peak {} B", peaks.max());
}

#[test]
#[ignore = "prints the client's heap per phase for a bundled model (BUNDLED_MODEL, default cnet1-c4)"]
fn client_heap_per_phase() {
    let name = std::env::var("BUNDLED_MODEL").unwrap_or_else(|_| "cnet1-c4".into());
    let model = bundled(&name);
    let x = vec![0.1f32; model.plan().input_len()];
    print(&name, &browser_like_peaks(&model, &x));
}
