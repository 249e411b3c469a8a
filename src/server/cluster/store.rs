//! The cluster's Redis connection for commands (the directory, publishing): one multiplexed
//! connection, made again after Redis went away.

use redis::aio::MultiplexedConnection;
use redis::{Cmd, FromRedisValue, RedisResult};
use tokio::sync::Mutex;

/// A Redis connection that reconnects on the next command after it broke.
pub struct Store {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Store {
    /// Connects to `client`'s Redis (failing at once if it does not answer).
    pub async fn connect(client: redis::Client) -> RedisResult<Store> {
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(Store { client, conn: Mutex::new(Some(conn)) })
    }

    async fn conn(&self) -> RedisResult<MultiplexedConnection> {
        let mut held = self.conn.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = self.client.get_multiplexed_async_connection().await?;
        *held = Some(c.clone());
        Ok(c)
    }

    /// Runs `cmd`; on a connection found broken, once more on a new one (Redis restarted).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self.try_query(cmd).await {
            Err(e) if broken(&e) => self.try_query(cmd).await,
            result => result,
        }
    }

    async fn try_query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut conn = self.conn().await?;
        let result = cmd.query_async(&mut conn).await;
        if let Err(e) = &result
            && broken(e)
        {
            *self.conn.lock().await = None;
        }
        result
    }
}

fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}
