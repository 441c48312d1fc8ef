//! Name parts of the generated book ([`crate::synth`]), written by the team: borrower
//! industries with their purposes and the payees they plausibly pay, the restricted-use payees
//! diversions are planted with, and people's names.
//!
//! Every payee template is `(the words after the trade name, GB/T 4754-2017 code the name
//! stands for)`; a code may stop at a division or section where the name does.

/// A borrower industry of the generated book.
pub struct Industry {
    /// Declared GB/T 4754-2017 class of its loans.
    pub code: &'static str,
    /// Words after the trade name in the borrower's name.
    pub borrower_words: &'static str,
    /// Loan purposes.
    pub purposes: &'static [&'static str],
    /// Payees its loans plausibly pay.
    pub suppliers: &'static [(&'static str, &'static str)],
}

pub const INDUSTRIES: &[Industry] = &[
    Industry {
        code: "3311",
        borrower_words: "钢结构工程制造有限公司",
        purposes: &[
            "采购钢材用于钢结构件生产",
            "支付H型钢及彩钢板货款",
            "购置焊接设备",
        ],
        suppliers: &[
            ("钢材贸易有限公司", "5164"),
            ("钢铁有限公司", "3130"),
            ("物流有限公司", "G"),
            ("机械设备制造有限公司", "34"),
            ("供电有限公司", "4420"),
        ],
    },
    Industry {
        code: "1711",
        borrower_words: "棉纺织有限公司",
        purposes: &["采购棉花原料", "支付纱线及染料货款", "更新细纱机"],
        suppliers: &[
            ("棉业有限公司", "0131"),
            ("纺织机械有限公司", "3551"),
            ("印染有限公司", "1713"),
            ("物流有限公司", "G"),
            ("包装材料有限公司", "2231"),
        ],
    },
    Industry {
        code: "3670",
        borrower_words: "汽车零部件有限公司",
        purposes: &["采购铝锭及模具", "支付冲压件原材料款", "购置数控机床"],
        suppliers: &[
            ("铝业有限公司", "32"),
            ("模具有限公司", "3525"),
            ("机械零部件加工厂", "3484"),
            ("汽车配件批发部", "5172"),
            ("快递有限公司", "6020"),
        ],
    },
    Industry {
        code: "4710",
        borrower_words: "建筑工程有限公司",
        purposes: &[
            "支付工程材料款及劳务费",
            "采购商品混凝土和钢筋",
            "支付项目分包款",
        ],
        suppliers: &[
            ("商品混凝土有限公司", "3021"),
            ("建材有限公司", "5165"),
            ("建筑劳务有限公司", "E"),
            ("钢材贸易有限公司", "5164"),
            ("水泥有限公司", "3011"),
        ],
    },
    Industry {
        code: "5164",
        borrower_words: "金属材料贸易有限公司",
        purposes: &["采购钢材用于销售", "支付上游钢厂货款", "备货螺纹钢及盘螺"],
        suppliers: &[
            ("钢铁有限公司", "3130"),
            ("特钢有限公司", "31"),
            ("物流有限公司", "G"),
            ("仓储有限公司", "59"),
        ],
    },
    Industry {
        code: "6210",
        borrower_words: "餐饮管理有限公司",
        purposes: &["门店装修及采购食材", "新开分店装修", "采购厨房设备及冷柜"],
        suppliers: &[
            ("装饰工程有限公司", "50"),
            ("农产品批发有限公司", "51"),
            ("厨具设备有限公司", "F"),
            ("蔬菜种植专业合作社", "0141"),
            ("粮油批发部", "5121"),
        ],
    },
    Industry {
        code: "0141",
        borrower_words: "蔬菜种植专业合作社",
        purposes: &["购买种苗化肥", "大棚建设及滴灌设备", "支付土地流转费用"],
        suppliers: &[
            ("种业有限公司", "0511"),
            ("农资有限公司", "5166"),
            ("农业机械有限公司", "5171"),
            ("温室工程有限公司", "E"),
        ],
    },
    Industry {
        code: "5431",
        borrower_words: "物流运输有限公司",
        purposes: &["购置重型货车", "支付燃油及路桥费", "车辆维修保养"],
        suppliers: &[
            ("汽车销售服务有限公司", "5261"),
            ("石油销售有限公司", "5265"),
            ("汽车修理厂", "8111"),
            ("轮胎有限公司", "2911"),
        ],
    },
    Industry {
        code: "6513",
        borrower_words: "软件有限公司",
        purposes: &[
            "支付研发外包及服务器采购",
            "采购云计算资源",
            "研发人员外包费用",
        ],
        suppliers: &[
            ("信息技术有限公司", "I"),
            ("计算机设备有限公司", "39"),
            ("云计算有限公司", "6450"),
            ("网络工程有限公司", "I"),
        ],
    },
    Industry {
        code: "7010",
        borrower_words: "房地产开发有限公司",
        purposes: &["支付项目工程款", "支付土地出让金", "开发项目建设资金"],
        suppliers: &[
            ("建筑工程有限公司", "47"),
            ("置业有限公司", "7010"),
            ("房地产开发有限公司", "7010"),
            ("装饰工程有限公司", "50"),
        ],
    },
];

/// Restricted-use payees diversions are planted with.
pub const RESTRICTED_PAYEES: &[(&str, &str)] = &[
    ("房地产开发有限公司", "7010"),
    ("置业发展有限公司", "7010"),
    ("小额贷款有限公司", "6635"),
    ("典当有限公司", "6633"),
    ("融资担保有限公司", "6999"),
    ("商业保理有限公司", "6639"),
    ("证券营业部", "6712"),
    ("信托有限责任公司", "6911"),
];

/// Prefixes (places) of generated names.
pub const PLACES: &[&str] = &[
    "杭州",
    "宁波",
    "温州",
    "苏州",
    "无锡",
    "常州",
    "南京",
    "合肥",
    "济南",
    "青岛",
    "郑州",
    "武汉",
    "长沙",
    "南昌",
    "福州",
    "厦门",
    "广州",
    "佛山",
    "东莞",
    "深圳",
    "成都",
    "重庆",
    "西安",
    "昆明",
    "沈阳",
    "大连",
    "天津",
    "石家庄",
    "太原",
    "南宁",
];

/// Characters of generated trade names (字号): three of them per name.
pub const TRADE_CHARS: &[char] = &[
    '华', '鑫', '恒', '泰', '德', '盛', '隆', '兴', '昌', '瑞', '丰', '源', '宏', '达', '通', '顺',
    '金', '银', '宝', '富', '安', '康', '永', '利', '嘉', '诚', '信', '和', '祥', '聚', '汇', '远',
    '博', '正', '天', '海', '东', '方', '新', '中', '卓', '越', '明', '辉', '腾', '飞', '凯', '旭',
    '晟', '峰', '岳', '川', '禾', '润', '泽', '益',
];

/// Surnames and given names of the people in the book.
pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "欧阳", "司马",
];
pub const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超",
    "秀英", "建国", "国庆", "海燕", "志强", "丽华", "玉兰", "晓东", "文斌", "春梅", "德胜",
];

/// Region codes (provinces) of the generated loans.
pub const REGIONS: &[&str] = &["33", "32", "44", "37", "41", "42", "43", "35", "51", "34"];
