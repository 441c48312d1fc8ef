use touxiang_text::{clean_whitespace, nfkc, normalize, prepare, to_simplified};

#[test]
fn nfkc_full_width_to_half_width() {
    assert_eq!(nfkc("ＡＢＣ１２３，"), "ABC123,");
    assert_eq!(nfkc("采购（钢材）：３００吨；"), "采购(钢材):300吨;");
    assert_eq!(nfkc("购买\u{3000}设备"), "购买 设备"); // ideographic space
    assert_eq!(nfkc("①号厂房"), "1号厂房");
    assert_eq!(nfkc("ｉＰｈｏｎｅ"), "iPhone");
    // CJK punctuation without a compatibility mapping is kept.
    assert_eq!(nfkc("设备、厂房。"), "设备、厂房。");
    // Already-normal text is unchanged.
    assert_eq!(nfkc("补充流动资金"), "补充流动资金");
}

#[test]
fn to_simplified_converts_traditional() {
    assert_eq!(
        to_simplified("購買設備，補充流動資金"),
        "购买设备，补充流动资金"
    );
    assert_eq!(
        to_simplified("用於餐廳裝修及購買冷凍櫃"),
        "用于餐厅装修及购买冷冻柜"
    );
    assert_eq!(
        to_simplified("支付貨款，採購熱軋鋼捲"),
        "支付货款，采购热轧钢卷"
    );
    assert_eq!(to_simplified("醫療器械銷售"), "医疗器械销售");
    // Simplified and English pass through unchanged.
    assert_eq!(to_simplified("补充流动资金"), "补充流动资金");
    assert_eq!(to_simplified("working capital"), "working capital");
    assert_eq!(to_simplified(""), "");
}

#[test]
fn clean_whitespace_controls_and_runs() {
    assert_eq!(clean_whitespace("  购买 \t\n 设备  "), "购买 设备");
    assert_eq!(clean_whitespace("购买\u{0}设备\u{7}"), "购买设备");
    assert_eq!(clean_whitespace("采\u{200B}购\u{FEFF}钢材"), "采购钢材");
    assert_eq!(clean_whitespace("line1\r\nline2"), "line1 line2");
    assert_eq!(clean_whitespace("\n\t "), "");
    assert_eq!(clean_whitespace("a\u{3000}\u{3000}b"), "a b");
}

#[test]
fn normalize_chains_the_steps() {
    assert_eq!(
        normalize("  購買設備，補充流動資金\n"),
        "购买设备,补充流动资金"
    );
    assert_eq!(
        normalize("支付ＡＢＣ公司\u{3000}貨款３００萬元"),
        "支付ABC公司 货款300万元"
    );
    assert_eq!(
        normalize("Purchase  of\tinventory  for 烘焙店"),
        "Purchase of inventory for 烘焙店"
    );
}

#[test]
fn normalize_is_idempotent() {
    for s in [
        "購買設備，補充流動資金",
        "支付ＡＢＣ公司\u{3000}貨款３００萬元",
        "用于烤串店装修及购买冷柜",
        "  Mixed 英文 and 繁體 ①②  ",
        // found by the text_pipeline fuzz target: a dropped control character left two
        // combining marks out of canonical order
        "\u{ffeb}\u{36d}\u{e}\u{354}A",
        "모\u{36d}\u{200b}\u{354}",
    ] {
        let once = normalize(s);
        assert_eq!(normalize(&once), once, "{s}");
    }
}

#[test]
fn prepare_keeps_all_stages() {
    let p = prepare("支付貨款３００萬元，合同編號HT2024001");
    assert_eq!(p.raw, "支付貨款３００萬元，合同編號HT2024001");
    assert_eq!(p.normalized, "支付货款300万元,合同编号HT2024001");
    assert_eq!(p.masked, "支付货款[金额],合同编号[编号]");
}
