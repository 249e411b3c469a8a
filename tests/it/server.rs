//! The signaling server's limits over a real WebSocket: every refusal is a clear error, then a
//! close.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use syncy::protocol::identity::HostSecret;
use syncy::protocol::signal::{ClientMsg, ErrorCode, ServerMsg, decode_server, encode};
use syncy::server::{Server, ServerConfig};
use tokio_tungstenite::tungstenite::Message as Ws;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and reads the server's greeting: the socket and this connection's nonce.
async fn connect(server: &Server) -> (Socket, String) {
    let mut ws = tokio_tungstenite::connect_async(format!("ws://{}/", server.addr)).await.unwrap().0;
    match ws.next().await {
        Some(Ok(Ws::Text(t))) => match decode_server(t.as_str(), 1 << 20).unwrap() {
            ServerMsg::Hello { nonce } => (ws, nonce),
            other => panic!("no hello: {other:?}"),
        },
        other => panic!("no hello: {other:?}"),
    }
}

/// Reads until an error message arrives, then checks the connection closes.
async fn refusal(ws: &mut Socket) -> (ErrorCode, String) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Ws::Text(t) = frame
                && let Ok(ServerMsg::Error { code, message }) = decode_server(t.as_str(), 1 << 20)
            {
                return Some((code, message));
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("an error message before the close");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Ws::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection not closed after {found:?}");
    found
}

/// A host's `Create` for this connection (`nonce`), with a key of its own.
fn create(nonce: &str) -> String {
    let key = HostSecret::random().host_key();
    let (room, join_token) = (key.room_id(None), "ab".repeat(32));
    let proof = key.create_proof(&room, &join_token, nonce);
    encode(&ClientMsg::Create { room, join_token, name: "h".into(), host_key: key.public().to_hex(), proof })
}

#[test]
fn limits_refuse_with_clear_messages() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = ServerConfig { max_message: 1024, msg_rate: 5.0, msg_burst: 5.0, max_rooms: 1, ..Default::default() };
        let server = Server::start("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();

        // Oversized message.
        let (mut ws, _) = connect(&server).await;
        ws.send(Ws::Text("x".repeat(4096).into())).await.unwrap();
        let (code, msg) = refusal(&mut ws).await;
        assert_eq!(code, ErrorCode::TooLarge);
        assert!(msg.contains("1024 bytes"), "{msg}");

        // Garbage.
        let (mut ws, _) = connect(&server).await;
        ws.send(Ws::Text("{\"type\":\"teleport\"}".into())).await.unwrap();
        assert_eq!(refusal(&mut ws).await.0, ErrorCode::BadMessage);

        // Signal before joining.
        let (mut ws, _) = connect(&server).await;
        ws.send(Ws::Text(r#"{"type":"signal","to":1,"payload":{"kind":"ice","candidate":"c","sdp_mid":null,"sdp_mline_index":null}}"#.into())).await.unwrap();
        let (code, msg) = refusal(&mut ws).await;
        assert_eq!(code, ErrorCode::BadMessage);
        assert!(msg.contains("join"), "{msg}");

        // Rate: the room's host floods.
        let (mut host, nonce) = connect(&server).await;
        host.send(Ws::Text(create(&nonce).into())).await.unwrap();
        let ping = r#"{"type":"signal","to":999,"payload":{"kind":"ice","candidate":"c","sdp_mid":null,"sdp_mline_index":null}}"#;
        for _ in 0..20 {
            if host.send(Ws::Text(ping.into())).await.is_err() {
                break;
            }
        }
        let (code, msg) = refusal(&mut host).await;
        assert_eq!(code, ErrorCode::RateLimited);
        assert!(msg.contains("per second"), "{msg}");

        // Rooms per server: the flooding host's room goes with its connection (asked again
        // until the server has let it go); one room fits, a second does not.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let _a = loop {
            let (mut a, nonce) = connect(&server).await;
            a.send(Ws::Text(create(&nonce).into())).await.unwrap();
            match a.next().await {
                Some(Ok(Ws::Text(t))) if matches!(decode_server(t.as_str(), 1 << 20).unwrap(), ServerMsg::Created { .. }) => break a,
                other => assert!(std::time::Instant::now() < deadline, "the flooder's room is still there: {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (mut b, nonce) = connect(&server).await;
        b.send(Ws::Text(create(&nonce).into())).await.unwrap();
        let (code, msg) = refusal(&mut b).await;
        assert_eq!(code, ErrorCode::ServerFull);
        assert!(msg.contains("maximum of 1 rooms"), "{msg}");
    });
}

#[test]
fn silent_connections_are_closed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = ServerConfig { join_timeout: Duration::from_millis(300), ..Default::default() };
        let server = Server::start("127.0.0.1:0".parse().unwrap(), cfg).await.unwrap();
        let (mut ws, _) = connect(&server).await;
        let (code, _) = refusal(&mut ws).await;
        assert_eq!(code, ErrorCode::Idle);
    });
}
