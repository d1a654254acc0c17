//! Listing semantics of `MemoryStore`: prefixes grouped once at every page size, listing under a
//! prefix, and ranged reads.

use super::*;

fn store(keys: &[&str], page: usize) -> MemoryStore {
    let s = MemoryStore::with_page_size(page);
    for k in keys {
        s.insert(k, Bytes::from_static(b"x"));
    }
    s
}

async fn list_all(s: &MemoryStore, prefix: &str) -> (Vec<String>, Vec<String>, usize) {
    let mut req = ListRequest {
        prefix: prefix.to_string(),
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let (mut objs, mut prefs, mut pages) = (vec![], vec![], 0);
    loop {
        let page = s.list_objects(&req).await.expect("list");
        pages += 1;
        objs.extend(page.objects.into_iter().map(|o| o.key));
        prefs.extend(page.prefixes);
        match page.next {
            Some(t) => req.continuation = Some(t),
            None => break,
        }
    }
    (objs, prefs, pages)
}

#[tokio::test]
async fn pagination_groups_prefixes_once_at_every_page_size() {
    let keys = ["a", "a-/x", "a/1", "a/2", "a/3", "b", "c/d/e", "c/f"];
    for page in [1, 2, 3, 1000] {
        let s = store(&keys, page);
        let (objs, prefs, pages) = list_all(&s, "").await;
        assert_eq!(objs, vec!["a", "b"], "page size {page}");
        assert_eq!(prefs, vec!["a-/", "a/", "c/"], "page size {page}");
        assert_eq!(
            pages,
            if page == 1000 { 1 } else { 5usize.div_ceil(page) },
            "page size {page}"
        );
    }
}

#[tokio::test]
async fn listing_under_a_prefix_and_ranges() {
    let s = store(&["p/a", "p/b/c", "q"], 1);
    let (objs, prefs, _) = list_all(&s, "p/").await;
    assert_eq!(objs, vec!["p/a"]);
    assert_eq!(prefs, vec!["p/b/"]);
    s.insert("k", Bytes::from_static(b"0123456789"));
    assert_eq!(&s.get_range("k", 2..5, None).await.expect("get")[..], b"234");
    assert_eq!(&s.get_range("k", 8..50, None).await.expect("get")[..], b"89");
    assert!(s.get_range("k", 20..30, None).await.expect("get").is_empty());
    assert!(matches!(
        s.get_range("k", 0..1, Some("\"nope\"")).await,
        Err(StoreError::PreconditionFailed { .. })
    ));
}
