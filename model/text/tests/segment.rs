use std::sync::LazyLock;
use touxiang_datasets::Taxonomy;
use touxiang_text::{taxonomy_words, Segmenter};

static SEG: LazyLock<Segmenter> = LazyLock::new(Segmenter::default);

fn has_any(kws: &[String], any: &[&str]) -> bool {
    kws.iter().any(|k| any.contains(&k.as_str()))
}

#[test]
fn cut_uses_user_dictionary() {
    let words = SEG.cut("补充流动资金,采购热轧钢卷");
    assert!(words.contains(&"流动资金".to_string()), "{words:?}");
    assert!(
        words.contains(&"热轧钢卷".to_string())
            || (words.contains(&"热轧".to_string()) && words.contains(&"钢卷".to_string())),
        "{words:?}"
    );
    let words = SEG.cut("采用受托支付方式发放固定资产贷款");
    assert!(words.contains(&"受托支付".to_string()), "{words:?}");
    assert!(words.contains(&"固定资产贷款".to_string()), "{words:?}");
    // Whitespace is dropped.
    assert!(!SEG.cut("购买 设备").iter().any(|w| w.trim().is_empty()));
}

#[test]
fn taxonomy_words_include_split_names() {
    let w = taxonomy_words(Taxonomy::gbt4754());
    assert!(w.contains("小吃服务"), "full short name");
    assert!(w.contains("谷物种植"));
    // 豆类、油料和薯类种植 is split into its components.
    assert!(w.contains("豆类") && w.contains("油料") && w.contains("薯类种植"));
    assert!(!w.iter().any(|x| x.contains('、')));
    assert!(w.iter().all(|x| (2..=8).contains(&x.chars().count())));
    assert!(SEG.user_words() > 1000, "{}", SEG.user_words());
    assert!(SEG.has_word("受托支付"));
}

#[test]
fn keywords_skip_boilerplate() {
    let k = SEG.keywords("用于烤串店装修及购买冷柜", 5);
    assert!(k.contains(&"烤串".to_string()), "{k:?}");
    assert!(k.contains(&"冷柜".to_string()), "{k:?}");
    assert!(k.contains(&"装修".to_string()), "{k:?}");
    assert!(!has_any(&k, &["用于", "购买", "及"]), "{k:?}");

    let k = SEG.keywords("补充流动资金，采购热轧钢卷", 5);
    assert!(has_any(&k, &["热轧钢卷", "热轧", "钢卷"]), "{k:?}");
    assert!(!has_any(&k, &["补充", "流动资金", "采购", "资金"]), "{k:?}");
}

#[test]
fn keywords_traditional_full_width_and_masked_tokens() {
    // 繁體 input gives the same keywords as 简体.
    assert_eq!(
        SEG.keywords("用於燒烤店裝修及購買冷櫃", 5),
        SEG.keywords("用于烧烤店装修及购买冷柜", 5)
    );
    // Amounts, ids and dates never come out as keywords.
    let k = SEG.keywords(
        "２０２４年３月支付ＡＢＣ公司饲料货款３００万元，合同编号HT2024001",
        5,
    );
    assert!(k.contains(&"饲料".to_string()), "{k:?}");
    for bad in [
        "300",
        "万元",
        "2024",
        "HT2024001",
        "金额",
        "编号",
        "日期",
        "公司",
        "合同",
    ] {
        assert!(!k.iter().any(|x| x == bad), "{bad} in {k:?}");
    }
}

#[test]
fn keywords_industry_examples() {
    let cases: &[(&str, &[&str])] = &[
        (
            "用于养殖场扩建，购买饲料和仔猪",
            &["仔猪", "饲料", "养殖场"],
        ),
        (
            "承接市政道路工程，支付工程款及购买沥青",
            &["沥青", "市政道路"],
        ),
        ("用于5G基站建设及304不锈钢采购", &["基站", "不锈钢"]),
        ("奶茶店加盟费及装修", &["奶茶"]),
        (
            "Purchase of inventory for my small bakery",
            &["bakery", "inventory"],
        ),
    ];
    for (text, want) in cases {
        let k = SEG.keywords(text, 5);
        assert!(has_any(&k, want), "{text}: {k:?}");
        assert!(k.iter().all(|w| !SEG.is_stop_word(w)), "{text}: {k:?}");
    }
}

#[test]
fn keywords_limits() {
    assert!(SEG.keywords("用于烤串店装修及购买冷柜", 0).is_empty());
    assert_eq!(SEG.keywords("用于烤串店装修及购买冷柜", 1).len(), 1);
    assert!(SEG.keywords("", 5).is_empty());
    assert!(
        SEG.keywords("补充流动资金", 5).is_empty(),
        "pure boilerplate"
    );
    // Deterministic.
    let a = SEG.keywords("承接市政道路工程，支付工程款及购买沥青", 5);
    assert_eq!(a, SEG.keywords("承接市政道路工程，支付工程款及购买沥青", 5));
}

#[test]
fn user_dict_loading_and_errors() {
    let mut seg = Segmenter::new(&[Taxonomy::purpose()]);
    assert!(!seg.has_word("晶圆级封装"));
    let n = seg
        .load_user_dict("# bank products\n晶圆级封装 50 nz\n惠农贷\n".as_bytes())
        .unwrap();
    assert_eq!(n, 2);
    assert!(seg.has_word("晶圆级封装") && seg.has_word("惠农贷"));
    let e = seg.load_user_dict("好词 abc\n".as_bytes()).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn segmenter_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Segmenter>();
}
