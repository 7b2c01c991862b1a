//! Both sessions fed arbitrary frames at every step of a real run: errors, never panics.
#![no_main]
use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    testing::tiny_model, ClientInput, ClientSession, FrameSession, ServerModel, ServerSession, Step,
};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn model() -> &'static (Arc<ServerModel>, Vec<f32>) {
    static M: OnceLock<(Arc<ServerModel>, Vec<f32>)> = OnceLock::new();
    M.get_or_init(|| {
        let (_, _, m, images) = tiny_model(1, 8, 1);
        (m, images[0].clone())
    })
}

fuzz_target!(|data: &[u8]| {
    let (m, x) = model();
    let Some((&at, frame)) = data.split_first() else { return };
    // Run an honest session for `at % 12` steps, then inject `frame` into one side.
    let mut server = ServerSession::new(m.clone(), Csprng::from_seed([1; 32]));
    let mut client = ClientSession::new(ClientInput::Normalised(x.clone()), Csprng::from_seed([2; 32]));
    let mut up = client.start().unwrap();
    for _ in 0..(at % 12) {
        let mut down = Vec::new();
        for f in up.drain(..) {
            match server.handle(&f) {
                Ok(Step::Continue(o)) | Ok(Step::Finished(o)) => down.extend(o),
                Err(_) => return,
            }
        }
        for f in down {
            match client.handle(&f) {
                Ok(Step::Continue(o)) => up.extend(o),
                _ => return,
            }
        }
    }
    if at & 0x80 == 0 {
        let _ = server.handle(frame);
    } else {
        let _ = client.handle(frame);
    }
});
