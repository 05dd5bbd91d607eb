"""Reference data for realistic samples (names, places, goods of the Lang Son - Guangxi border trade)."""

from __future__ import annotations

__all__ = [
    "BRANDS",
    "CN_COMPANY_CORES",
    "CN_DRIVER_NAMES",
    "CN_PLACES",
    "CONTAINER_OWNERS",
    "EXPORT_FRUIT",
    "EXPORT_OTHER",
    "FRUIT_SPECIES",
    "GOODS_WEIGHTS",
    "IMPORT_GOODS",
    "VN_COMPANY_CORES",
    "VN_COMPANY_FORMS",
    "VN_FAMILY",
    "VN_GIVEN",
    "VN_MIDDLE",
    "VN_PLACES",
    "VN_STREETS",
]

VN_COMPANY_FORMS = (
    "CÔNG TY TNHH THƯƠNG MẠI XUẤT NHẬP KHẨU",
    "CÔNG TY CỔ PHẦN NÔNG SẢN",
    "CÔNG TY TNHH MỘT THÀNH VIÊN",
    "CÔNG TY CỔ PHẦN ĐẦU TƯ VÀ THƯƠNG MẠI",
    "CÔNG TY TNHH LOGISTICS VÀ XUẤT NHẬP KHẨU",
    "HỢP TÁC XÃ NÔNG NGHIỆP",
)
VN_COMPANY_CORES = (
    "HOÀNG LONG", "PHÚ THỊNH", "MINH PHÁT", "ĐẠI VIỆT", "HƯNG THỊNH", "AN KHANG", "THÀNH ĐẠT", "VIỆT HÀ",
    "SAO MAI", "TÂN PHÁT", "ĐỒNG ĐĂNG", "XỨ LẠNG", "MIỀN TÂY XANH", "TRÁI CÂY VÀNG", "HỮU NGHỊ", "KỲ LỪA",
    "BẮC NAM", "TRƯỜNG THỊNH", "NGỌC ÁNH", "ĐÔNG Á",
)
VN_STREETS = (
    "Trần Đăng Ninh", "Lê Lợi", "Bà Triệu", "Hùng Vương", "Nguyễn Du", "Phai Vệ", "Tam Thanh", "Lý Thái Tổ",
    "Quốc lộ 1A", "Nguyễn Huệ", "Hai Bà Trưng", "Điện Biên Phủ",
)
VN_PLACES = (
    ("phường Đông Kinh", "thành phố Lạng Sơn", "tỉnh Lạng Sơn"),
    ("thị trấn Đồng Đăng", "huyện Cao Lộc", "tỉnh Lạng Sơn"),
    ("xã Tân Thanh", "huyện Văn Lãng", "tỉnh Lạng Sơn"),
    ("phường Tân Lợi", "thành phố Buôn Ma Thuột", "tỉnh Đắk Lắk"),
    ("phường Phú Thủy", "thành phố Phan Thiết", "tỉnh Bình Thuận"),
    ("xã Ngũ Hiệp", "huyện Cai Lậy", "tỉnh Tiền Giang"),
    ("phường Cầu Giấy", "quận Cầu Giấy", "thành phố Hà Nội"),
    ("phường Bến Nghé", "quận 1", "thành phố Hồ Chí Minh"),
    ("xã Phước Vĩnh Tây", "huyện Cần Giuộc", "tỉnh Long An"),
)
VN_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
VN_MIDDLE = ("Văn", "Thị", "Đức", "Minh", "Quang", "Thanh", "Hữu", "Ngọc")
VN_GIVEN = ("Hùng", "Dũng", "Tuấn", "Hương", "Lan", "Thắng", "Cường", "Phượng", "Sơn", "Hải", "Tâm", "Quỳnh",
            "Đạt", "Việt", "Nghĩa")
CN_DRIVER_NAMES = ("WANG JIANGUO", "LI MING", "HUANG WEI", "LIANG ZHIQIANG", "NONG HAIBO", "WEI DONG",
                   "LU XIAOFENG", "MO JUN", "TANG LIN", "ZHOU PENG")
CN_COMPANY_CORES = ("PINGXIANG HONGDA", "NANNING YUANFENG", "GUANGXI XINHE", "PINGXIANG JINLONG",
                    "CHONGZUO TAIHE", "GUANGXI BEIBU GULF", "NANNING HUAXIN", "PINGXIANG YOUYI")
CN_PLACES = (
    ("NO. 18 YOUYI ROAD", "PINGXIANG CITY", "CHONGZUO, GUANGXI"),
    ("NO. 66 MINZU AVENUE", "NANNING CITY", "GUANGXI"),
    ("NO. 9 BIANMAO STREET", "PINGXIANG CITY", "CHONGZUO, GUANGXI"),
    ("NO. 201 JINHU ROAD", "NANNING CITY", "GUANGXI"),
)
# (hs8, Vietnamese description, unit, (min, max) quantity, (min, max) unit price USD)
EXPORT_FRUIT = (
    ("08106000", "Sầu riêng tươi (Durio zibethinus), hàng đóng thùng carton, xuất xứ Việt Nam", "KGM",
     (16000, 22000), (3.2, 6.5)),
    ("08109092", "Thanh long ruột trắng tươi (Hylocereus undatus), loại 1", "KGM", (18000, 26000), (0.6, 1.4)),
    ("08109050", "Mít Thái tươi nguyên quả", "KGM", (20000, 28000), (0.5, 1.1)),
    ("08109010", "Nhãn tươi nguyên chùm", "KGM", (12000, 18000), (0.9, 1.8)),
    ("08109020", "Vải thiều tươi Lục Ngạn", "KGM", (10000, 16000), (1.0, 2.2)),
    ("08045020", "Xoài cát Hòa Lộc tươi", "KGM", (12000, 20000), (0.8, 1.9)),
    ("08039090", "Chuối xanh tươi (Cavendish), đóng thùng", "KGM", (20000, 28000), (0.3, 0.6)),
    ("08071100", "Dưa hấu tươi nguyên quả", "KGM", (22000, 30000), (0.2, 0.45)),
    ("08109030", "Chôm chôm tươi nguyên chùm", "KGM", (10000, 16000), (0.8, 1.6)),
    ("08045030", "Măng cụt tươi", "KGM", (8000, 14000), (1.8, 3.2)),
    ("08109099", "Chanh leo (chanh dây) tươi, loại 1", "KGM", (12000, 18000), (0.9, 1.7)),
)
EXPORT_OTHER = (
    ("07141011", "Sắn lát khô", "KGM", (25000, 32000), (0.2, 0.3)),
    ("40012220", "Cao su tự nhiên đã định chuẩn kỹ thuật SVR 10", "KGM", (20000, 25000), (1.3, 1.7)),
    ("08013200", "Hạt điều nhân đã bóc vỏ W320", "KGM", (8000, 16000), (5.5, 7.5)),
    ("10063099", "Gạo trắng hạt dài 5% tấm", "TNE", (20, 30), (480, 620)),
    ("94036090", "Bàn ghế gỗ cao su đã hoàn thiện", "CHIEC", (80, 400), (25, 90)),
    ("39232990", "Túi nhựa PE đóng gói thực phẩm", "KGM", (3000, 9000), (1.6, 2.4)),
    ("07142010", "Khoai lang tươi", "KGM", (20000, 28000), (0.3, 0.6)),
    ("07096010", "Ớt quả tươi", "KGM", (8000, 15000), (0.9, 1.8)),
    ("07099990", "Rau gia vị tươi các loại", "KGM", (3000, 8000), (0.8, 1.5)),
    ("10063030", "Gạo thơm Jasmine", "TNE", (20, 30), (560, 700)),
)
IMPORT_GOODS = (
    ("08081000", "Táo tươi Fuji", "KGM", (12000, 20000), (0.8, 1.4)),
    ("08052100", "Quýt tươi", "KGM", (15000, 22000), (0.5, 0.9)),
    ("08061000", "Nho tươi đỏ", "KGM", (10000, 18000), (1.2, 2.4)),
    ("07032090", "Tỏi củ tươi", "KGM", (20000, 28000), (0.7, 1.3)),
    ("07031019", "Hành tây tươi", "KGM", (20000, 28000), (0.2, 0.4)),
    ("07019000", "Khoai tây tươi", "KGM", (22000, 30000), (0.2, 0.35)),
    ("07061010", "Cà rốt tươi", "KGM", (20000, 28000), (0.25, 0.4)),
    ("31021000", "Phân urê dạng hạt, hàm lượng nitơ 46%", "TNE", (25, 32), (280, 360)),
    ("85171300", "Điện thoại di động thông minh, mới 100%", "CHIEC", (200, 2000), (60, 180)),
    ("84295200", "Máy đào bánh xích, dung tích gầu 1,2 m3, mới 100%", "CHIEC", (1, 3), (38000, 85000)),
    ("52083900", "Vải dệt thoi từ bông, đã nhuộm, khổ 150 cm", "MTK", (2000, 20000), (0.8, 2.2)),
    ("72083990", "Thép cán nóng dạng cuộn, chưa phủ mạ", "TNE", (20, 30), (520, 640)),
    ("73181510", "Bu lông bằng thép, đường kính ngoài 10 mm", "KGM", (500, 4000), (1.1, 2.0)),
    ("85044090", "Bộ nguồn chuyển đổi điện 12V", "CHIEC", (500, 5000), (1.5, 6.0)),
    ("61091000", "Áo phông nam bằng bông, dệt kim", "CHIEC", (500, 6000), (1.2, 3.5)),
    ("87089999", "Phụ tùng ô tô tải: má phanh", "BO", (100, 1200), (4.0, 15.0)),
    ("84713020", "Máy tính xách tay, mới 100%", "CHIEC", (100, 1500), (250, 700)),
    ("85176249", "Thiết bị thu phát sóng Wi-Fi (router)", "CHIEC", (500, 5000), (8.0, 30.0)),
    ("85414300", "Tấm pin năng lượng mặt trời đã lắp ráp thành mô-đun", "CHIEC", (200, 2000), (45, 120)),
    ("85076090", "Pin lithium-ion dùng cho xe đạp điện", "CHIEC", (200, 3000), (30, 90)),
    ("85287292", "Ti vi màn hình LED 55 inch", "CHIEC", (50, 600), (180, 420)),
    ("94054290", "Đèn LED chiếu sáng công nghiệp", "CHIEC", (300, 4000), (6.0, 25.0)),
    ("84158190", "Máy điều hòa không khí hai chiều", "CHIEC", (50, 500), (220, 480)),
    ("84082022", "Động cơ diesel cho xe tải", "CHIEC", (5, 40), (2500, 6500)),
    ("84818099", "Van công nghiệp bằng thép", "CHIEC", (200, 3000), (5.0, 40.0)),
    ("84311019", "Phụ tùng máy xúc: răng gầu", "KGM", (500, 5000), (2.0, 5.0)),
    ("54075200", "Vải dệt thoi từ sợi filament polyeste, đã nhuộm", "MTK", (3000, 30000), (0.6, 1.6)),
    ("60063290", "Vải dệt kim từ sợi tổng hợp, đã nhuộm", "KGM", (2000, 15000), (2.5, 4.5)),
    ("55151300", "Vải dệt thoi từ xơ staple polyeste pha lông cừu", "MTK", (2000, 12000), (2.0, 4.0)),
    ("39011099", "Hạt nhựa polyetylen (PE) nguyên sinh", "TNE", (20, 28), (950, 1300)),
    ("28151100", "Natri hydroxit (xút) dạng rắn", "TNE", (20, 30), (350, 480)),
    ("72104912", "Thép tấm mạ kẽm dạng cuộn", "TNE", (20, 30), (640, 780)),
)
# VN national code -> species code of mappings/codelists/fruit_species.csv (the licensed fruits generated)
FRUIT_SPECIES = {
    "08106000": "DUR", "08109092": "DRF", "08109050": "JCK", "08109010": "LGN", "08109020": "LYC",
    "08045020": "MAN", "08039090": "BAN", "08071100": "WML", "08109030": "RMB", "08045030": "MGT",
    "08109099": "PSF",
}
# Relative weight of a goods line (default 1): durian and dragon fruit lead the fruit trade through
# Lang Son; machinery, electronics, textiles and materials lead the imports.
GOODS_WEIGHTS = {
    "08106000": 30, "08109092": 20, "08109050": 10, "08039090": 8, "08071100": 6, "08045020": 6, "08109010": 5,
    "08109020": 5, "08109030": 3, "08045030": 3, "08109099": 4,
    "84295200": 4, "84713020": 4, "85171300": 5, "85176249": 3, "85414300": 4, "85076090": 3, "85287292": 3,
    "84082022": 3, "84311019": 3, "52083900": 4, "54075200": 4, "60063290": 3, "61091000": 3,
    "72083990": 3, "39011099": 3, "31021000": 2,
}
CONTAINER_OWNERS = ("MSKU", "TGHU", "CSQU", "SEGU", "TCLU", "CAIU", "OOLU", "COSU")
BRANDS = ("HOWO", "DONGFENG", "FAW", "SHACMAN", "HYUNDAI", "ISUZU", "HINO", "THACO")
