//! A test-side SSE reader: takes the body as it arrives, in whatever chunks, and
//! yields complete events with their id, name and data.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
    pub retry: Option<u64>,
    pub comments: Vec<String>,
}

pub struct SseClient {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: Vec<u8>,
    pending: Frame,
    has_fields: bool,
}

impl SseClient {
    pub fn new(body: BoxStream<'static, reqwest::Result<Bytes>>) -> Self {
        SseClient {
            body,
            buffer: Vec::new(),
            pending: Frame::default(),
            has_fields: false,
        }
    }

    /// The next event a browser would dispatch, or `None` at the end of the stream or
    /// after `wait`. As in EventSource, a frame whose data is empty is no event, however
    /// it is named: comments, retry hints and data-less frames are skipped.
    pub async fn next_event(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = self.next_frame(deadline).await?;
            if !frame.data.is_empty() {
                return Some(frame);
            }
        }
    }

    /// The next frame of any kind.
    pub async fn next_frame(&mut self, deadline: tokio::time::Instant) -> Option<Frame> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            // Byte by byte, as a worst-case network would deliver it.
            self.buffer.extend_from_slice(&chunk.ok()?);
        }
    }

    /// Events until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_event(quiet).await {
            frames.push(frame);
        }
        frames
    }

    fn take_frame(&mut self) -> Option<Frame> {
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let line = line.strip_suffix('\r').unwrap_or(&line).to_owned();

            if line.is_empty() {
                if self.has_fields {
                    self.has_fields = false;
                    let mut frame = std::mem::take(&mut self.pending);
                    if frame.data.ends_with('\n') {
                        frame.data.pop();
                    }
                    return Some(frame);
                }
                continue;
            }
            self.has_fields = true;
            if let Some(comment) = line.strip_prefix(':') {
                self.pending.comments.push(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.pending.id = Some(value.to_owned()),
                "event" => self.pending.event = value.to_owned(),
                "data" => {
                    self.pending.data.push_str(value);
                    self.pending.data.push('\n');
                }
                "retry" => self.pending.retry = value.parse().ok(),
                _ => {}
            }
        }
        None
    }
}
