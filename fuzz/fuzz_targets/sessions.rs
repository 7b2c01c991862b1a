//! Both sessions fed arbitrary frames: a fresh client (waiting for the plan) and a server past the
//! hello (waiting for the HE key). Deeper states are reached through the HE/OT/GC decoders, fuzzed
//! by their own targets, since a real offline step costs milliseconds.
#![no_main]
use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    testing::tiny_model, ClientInput, ClientSession, Msg, ServerModel, ServerSession, Session,
    PROTOCOL_VERSION,
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
    let Some((&which, frame)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let mut server = ServerSession::new(m.clone(), Csprng::from_seed([1; 32]));
        let hello = Msg::ClientHello {
            version: PROTOCOL_VERSION,
        };
        server.handle(&hello.encode()).unwrap();
        let _ = server.handle(frame);
    } else {
        let mut client = ClientSession::new(
            ClientInput::Normalised(x.clone()),
            Csprng::from_seed([2; 32]),
        );
        let _ = client.handle(frame);
    }
});
