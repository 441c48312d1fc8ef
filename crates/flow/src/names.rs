//! Payee and borrower names: normalisation (the cache key and the round-trip comparison) and the
//! rule that recognises a natural person's name.
//!
//! ## Normalisation ([`normalize`])
//! NFKC (full-width letters, digits and brackets become ASCII: `（` → `(`), ASCII lower case,
//! every whitespace and the name-dot variants (`·`, `•`, `・`, `.`) removed. So `ZHANG WEI`,
//! `zhang wei` and `ＺＨＡＮＧ　ＷＥＩ` are one payee, and `阿卜杜拉•艾山` equals `阿卜杜拉·艾山`.
//!
//! ## Individuals ([`is_individual`])
//! A payee is a natural person (kind `individual`, no industry) when its name carries no mark of
//! an organisation ([`ORG_WORDS`] anywhere, or one of [`ORG_SUFFIXES`] at the end) and it is
//! * `X先生` / `X女士` / `X小姐` with `X` of at most 4 Han characters; or
//! * Han parts joined by a name dot (`阿依古丽·吐尔逊`, minority names); or
//! * 2 to 5 Han characters (spaces ignored: `李 强`) — Chinese, Tibetan and Mongolian personal
//!   names; short enterprise names always carry a mark (`…店`, `…厂`, `…公司`); or
//! * 2 to 4 Latin words of letters only with no company word (`ZHANG WEI`).
//!
//! Short brand-like personal names (`万家乐`, `金鑫`) are individuals by this rule too, as they
//! are on payment records. Everything else is an organisation and is classified by the model.

use unicode_normalization::UnicodeNormalization;

/// Normalised form of a name (see the module documentation).
pub fn normalize(name: &str) -> String {
    name.nfkc()
        .filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '・' | '.' | '‧'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Words that mark an organisation wherever they appear in a name.
pub const ORG_WORDS: &[&str] = &[
    "公司",
    "有限",
    "集团",
    "银行",
    "证券",
    "期货",
    "基金",
    "信托",
    "保险",
    "合作社",
    "个体工商户",
    "委员会",
    "政府",
    "中心",
    "医院",
    "学校",
    "大学",
    "学院",
    "交易所",
    "营业部",
    "事务所",
    "工作室",
    "协会",
    "商会",
    "学会",
    "门市",
    "经营部",
    "专户",
    "账户",
    "計劃",
    "计划",
    "农场",
    "牧场",
    "林场",
    "渔场",
    "养殖",
    "种植",
    "酒店",
    "宾馆",
    "饭店",
    "超市",
    "商场",
    "市场",
    "广场",
    "影城",
    "诊所",
    "药房",
    "物业",
    "科技",
    "实业",
    "投资",
    "控股",
    "贸易",
    "商贸",
    "置业",
    "地产",
    "建设",
    "工程",
    "股份",
    "支行",
    "分行",
    "分公司",
    "研究院",
    "研究所",
    "管委会",
    "居委会",
    "村委会",
    "人民",
    "中共",
    "联社",
    "信用社",
    "小额",
    "典当",
    "保理",
    "租赁",
    "担保",
    "物流",
    "运输",
    "餐饮",
    "烧烤",
    "火锅",
    "咖啡",
    "批发",
    "零售",
    "加工",
    "制造",
    "电子",
    "电器",
    "机械",
    "设备",
    "材料",
    "服务",
    "管理",
    "咨询",
    "传媒",
    "文化",
    "旅游",
    "开发",
    "技术",
    "网络",
    "信息",
    "能源",
    "电力",
    "燃气",
    "水务",
    "环保",
    "医药",
    "药业",
    "食品",
    "服饰",
    "纺织",
    "化工",
    "钢铁",
    "建材",
    "装饰",
    "装修",
    "家具",
    "汽车",
];

/// Characters that mark an organisation at the end of a name (`…店`, `…厂`, `…局`).
pub const ORG_SUFFIXES: &[char] = &[
    '店', '厂', '社', '院', '馆', '局', '所', '部', '会', '站', '场', '队', '处', '室', '坊', '铺',
    '寺', '庙', '宫', '校', '府', '委', '办', '司', '署', '团', '吧', '楼', '厅', '行', '庄', '城',
    '台', '库', '矿', '窑', '堂', '阁', '轩', '居', '斋', '廊', '档', '号',
];

/// Latin words that mark a company.
const LATIN_ORG_WORDS: &[&str] = &[
    "co",
    "ltd",
    "limited",
    "inc",
    "corp",
    "corporation",
    "company",
    "llc",
    "bank",
    "group",
    "trading",
    "holdings",
    "plc",
    "gmbh",
    "sa",
    "ag",
    "trust",
    "fund",
    "partners",
    "llp",
];

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

fn has_org_mark(s: &str) -> bool {
    ORG_WORDS.iter().any(|w| s.contains(w))
        || (s.chars().count() >= 3 && s.chars().last().is_some_and(|c| ORG_SUFFIXES.contains(&c)))
}

/// Is `name` a natural person's name (see the module documentation)?
pub fn is_individual(name: &str) -> bool {
    let nfkc: String = name.nfkc().collect();
    let t = nfkc.trim();
    if t.is_empty() {
        return false;
    }
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if has_org_mark(&compact) {
        return false;
    }
    for title in ["先生", "女士", "小姐"] {
        if let Some(p) = compact.strip_suffix(title) {
            let n = p.chars().count();
            return (1..=4).contains(&n) && p.chars().all(is_han);
        }
    }
    let dots = |c: char| matches!(c, '·' | '•' | '・' | '‧' | '.');
    if compact.chars().any(dots) {
        let parts: Vec<&str> = compact.split(dots).collect();
        return parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(is_han));
    }
    let n = compact.chars().count();
    if compact.chars().all(is_han) {
        return (2..=5).contains(&n);
    }
    if t.chars()
        .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '-')
    {
        let words: Vec<String> = t.split_whitespace().map(str::to_ascii_lowercase).collect();
        return (2..=4).contains(&words.len())
            && !words.iter().any(|w| LATIN_ORG_WORDS.contains(&w.as_str()));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_joins_spellings() {
        assert_eq!(normalize(" ZHANG  WEI "), normalize("ｚｈａｎｇ　ｗｅｉ"));
        assert_eq!(normalize("阿卜杜拉•艾山"), normalize("阿卜杜拉·艾山"));
        assert_eq!(normalize("某某（上海）有限公司"), "某某(上海)有限公司");
    }

    #[test]
    fn people_and_organisations() {
        for p in [
            "张伟",
            "欧阳振华",
            "李 强",
            "王先生",
            "陈建国先生",
            "阿依古丽·吐尔逊",
            "扎西顿珠",
            "乌云其木格",
            "ZHANG WEI",
            "万家乐",
            "黄金",
        ] {
            assert!(is_individual(p), "{p}");
        }
        for o in [
            "华为技术有限公司",
            "工行杭州湖滨支行",
            "朝阳区老张烧烤店",
            "南京博物院",
            "浙江大学",
            "个体工商户王建国",
            "XX房地产开发有限公司",
            "ACME TRADING CO LTD",
            "温州市财政局",
        ] {
            assert!(!is_individual(o), "{o}");
        }
    }
}
