//! Listing pages fetched ahead: one background task per listing follows the ListObjectsV2
//! continuation chain, so S3 keeps answering while the kernel (or a tree walk) works through the
//! pages already here. The window grows like a read-ahead: one page ahead at first (a reader
//! that wants the first names of a huge directory costs one LIST more), one more for each page
//! the reader takes, up to [`PAGES_AHEAD`] (or a smaller bound: a listing that stops at a page
//! limit keeps one page ahead, so that stopping wastes one LIST at most). Pages come out in order;
//! the task stops at the last page, at an error (handed on like a page), or when it is dropped.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::store::{ListPage, ListRequest, ObjectStore, StoreError};

/// Pages listed ahead of the reader, at most, once it has taken that many. A reader slower than
/// S3 (`ls -l` building an inode per name) then seldom waits for a page.
pub const PAGES_AHEAD: usize = 4;

/// The pages of a listing after the one the reader has, on their way.
pub struct PagesAhead {
    pages: mpsc::Receiver<Result<ListPage, StoreError>>,
    /// Pages the task may list beyond those taken: one per free slot of the window.
    room: Arc<Semaphore>,
    /// The window: pages listed ahead of the reader, at most.
    window: usize,
    /// The largest the window grows.
    max_window: usize,
    task: JoinHandle<()>,
}

impl PagesAhead {
    /// Start listing at `req` (its continuation token says where) in the background, at most
    /// `max_window` (1 to [`PAGES_AHEAD`]) pages ahead of the reader.
    pub fn start(store: Arc<dyn ObjectStore>, mut req: ListRequest, max_window: usize) -> PagesAhead {
        let (tx, pages) = mpsc::channel(PAGES_AHEAD);
        let room = Arc::new(Semaphore::new(1));
        let task_room = room.clone();
        let task = tokio::spawn(async move {
            loop {
                match task_room.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return,
                }
                let page = store.list_objects(&req).await;
                let next = page.as_ref().ok().and_then(|p| p.next.clone());
                if tx.send(page).await.is_err() {
                    return;
                }
                match next {
                    Some(token) => req.continuation = Some(token),
                    None => return,
                }
            }
        });
        PagesAhead {
            pages,
            room,
            window: 1,
            max_window: max_window.clamp(1, PAGES_AHEAD),
            task,
        }
    }

    /// The next page, waiting for it if needed; `None` if the task ended without one (it failed
    /// to run to the end: the caller lists that page itself).
    pub async fn next(&mut self) -> Option<Result<ListPage, StoreError>> {
        let page = self.pages.recv().await;
        // The page's slot is free again, and the reader has earned a wider window.
        let grow = usize::from(self.window < self.max_window);
        self.window += grow;
        self.room.add_permits(1 + grow);
        page
    }

    /// Whether the next page is already here.
    pub fn ready(&self) -> bool {
        !self.pages.is_empty()
    }
}

impl Drop for PagesAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::Ordering;

    fn memory_with(n: usize) -> MemoryStore {
        let store = MemoryStore::new();
        for i in 0..n {
            store.insert(&format!("d/f{i:04}"), &b"x"[..]);
        }
        store
    }

    fn store_with(n: usize) -> Arc<MemoryStore> {
        Arc::new(memory_with(n))
    }

    fn req() -> ListRequest {
        ListRequest {
            prefix: "d/".into(),
            delimiter: Some("/".into()),
            continuation: None,
            max_keys: Some(10),
        }
    }

    #[tokio::test]
    async fn pages_come_in_order_and_end_at_the_last() {
        let mut ahead = PagesAhead::start(store_with(35), req(), PAGES_AHEAD);
        let mut keys = Vec::new();
        let mut pages = 0;
        while let Some(page) = ahead.next().await {
            let page = page.expect("page");
            pages += 1;
            keys.extend(page.objects.iter().map(|o| o.key.clone()));
            if page.next.is_none() {
                break;
            }
        }
        assert_eq!(pages, 4);
        let want: Vec<String> = (0..35).map(|i| format!("d/f{i:04}")).collect();
        assert_eq!(keys, want);
        assert!(ahead.next().await.is_none(), "nothing after the last page");
    }

    /// LISTs the store has answered, once the task has had time to fill its window.
    async fn listed_after_a_while(store: &MemoryStore) -> usize {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        store.counts.list.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn the_window_starts_at_one_page_and_grows_with_each_page_taken() {
        let store = store_with(200);
        let mut ahead = PagesAhead::start(store.clone(), req(), PAGES_AHEAD);
        assert_eq!(
            listed_after_a_while(&store).await,
            1,
            "one page ahead before any is taken"
        );
        assert!(ahead.ready());
        let first = ahead.next().await.expect("a page").expect("ok");
        assert_eq!(first.objects.len(), 10);
        // Taken 1: the window is 2 pages beyond it.
        assert_eq!(listed_after_a_while(&store).await, 3);
        ahead.next().await.expect("a page").expect("ok");
        assert_eq!(listed_after_a_while(&store).await, 2 + 3);
        for _ in 0..5 {
            ahead.next().await.expect("a page").expect("ok");
        }
        // Taken 7: the window stopped growing at PAGES_AHEAD.
        assert_eq!(listed_after_a_while(&store).await, 7 + PAGES_AHEAD);
    }

    #[tokio::test]
    async fn a_bounded_window_stays_at_its_bound() {
        let store = store_with(200);
        let mut ahead = PagesAhead::start(store.clone(), req(), 1);
        for _ in 0..3 {
            ahead.next().await.expect("a page").expect("ok");
        }
        assert_eq!(listed_after_a_while(&store).await, 3 + 1, "one page ahead, no more");
    }

    #[tokio::test]
    async fn a_failed_page_is_handed_on_and_ends_the_task() {
        let store = Arc::new(crate::store::fault::FaultStore::new(memory_with(30)));
        store.fail("ListObjectsV2", 1, 1);
        let mut ahead = PagesAhead::start(store, req(), PAGES_AHEAD);
        assert!(ahead.next().await.expect("the first page").is_ok());
        assert!(ahead.next().await.expect("the failure").is_err());
        assert!(ahead.next().await.is_none(), "nothing after a failure");
    }
}
