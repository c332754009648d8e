//! A reload to a catalogue with another set of tools must not panic, and tool counts follow the
//! tools by id (review finding: tool indices are positions in the sorted catalogue).

use etherparse::PacketBuilder;
use rmmguard::catalog::Catalog;
use rmmguard::engine::{learned::Learned, Config, ConfigHandle, Engine, Options};
use rmmguard::policy::Policy;
use std::sync::Arc;

fn syn(sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 168, 1, 10], [198, 51, 100, 7], 64)
        .tcp(sport, dport, 1000, 65535)
        .syn();
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

fn small_catalog() -> Catalog {
    let tv = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("port-lists/tools/teamviewer.toml"),
    )
    .unwrap();
    let extra = "id = \"aaa-test\"\nname = \"AAA\"\ncategory = \"rmm\"\n\n[[indicator]]\nkind = \"port\"\nproto = \"tcp\"\nport = \"40404\"\nconfidence = \"high\"\nsources = [\"test\"]\n";
    Catalog::from_files(vec![
        ("aaa-test.toml".to_string(), extra.to_string()),
        ("teamviewer.toml".to_string(), tv),
    ])
    .unwrap()
}

#[test]
fn reload_to_another_catalogue_remaps_tools_and_does_not_panic() {
    let big = Catalog::embedded().unwrap();
    let tv_big = big.tool_id("teamviewer").unwrap();
    assert!(
        tv_big > 1,
        "teamviewer is not among the first tools of the full catalogue"
    );
    let policy = Policy::builtin(&big);
    let handle = ConfigHandle::new(Config {
        catalog: Arc::new(big),
        policy: Arc::new(policy),
    });
    let learned = Arc::new(Learned::new(1024));
    let mut e = Engine::new(handle.clone(), learned.clone(), Options::default(), 0);
    // A TeamViewer flow decided at its SYN, still in the table.
    e.process(1, 1, &syn(40000, 5938));
    assert_eq!(e.events.len(), 1);
    e.events.clear();
    // An address learned under the old catalogue.
    let addr = rmmguard::decode::v4_mapped([198, 51, 100, 9]);
    let old_tag = handle.get().catalog.tag;
    learned.learn_tagged(addr, tv_big, 0, 300, 3600, 1, old_tag);

    let small = small_catalog();
    let tv_small = small.tool_id("teamviewer").unwrap();
    assert_ne!(tv_small, tv_big);
    let policy = Policy::builtin(&small);
    handle.set(Config {
        catalog: Arc::new(small),
        policy: Arc::new(policy),
    });
    e.check_reload();
    // New flows use the new catalogue; the old flow and the old learned address do not
    // index it with their old numbers.
    for p in 0..2000u16 {
        e.process(2, 1, &syn(41000 + p, 443));
    }
    e.process(3, 1, &syn(42000, 40404));
    assert_eq!(e.events.len(), 1);
    assert_eq!(e.events[0].tool, small_tool(&handle, "aaa-test"));
    assert!(learned
        .get_tagged(&addr, 2, handle.get().catalog.tag)
        .is_none());
    e.flush(10);
    // The TeamViewer flow's counts moved to TeamViewer's new index.
    assert_eq!(e.stats.tools.len(), 3);
    assert_eq!(e.stats.tools[tv_small as usize].flows, 1);
    assert_eq!(e.stats.tools[tv_small as usize].blocked, 1);
}

fn small_tool(h: &ConfigHandle, id: &str) -> u16 {
    h.get().catalog.tool_id(id).unwrap()
}
